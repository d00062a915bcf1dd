"""The whole recipe: every section, and the checks that span sections."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from edgeseg.recipe._base import MAX_NAME, _Strict
from edgeseg.recipe.bench import BenchSection, GatesSpec
from edgeseg.recipe.compress import CompressSpec
from edgeseg.recipe.data import DataSpec
from edgeseg.recipe.export import ExportSpec
from edgeseg.recipe.model import ModelSpec
from edgeseg.recipe.select import SelectSpec, SweepSpec
from edgeseg.recipe.train import AdaptSpec, EvalSpec, TrainSpec
from edgeseg.registry import did_you_mean


class TrackingSpec(_Strict):
    """Experiment tracking. MLflow logs every build when ``mlflow`` is true or the environment
    sets ``MLFLOW_TRACKING_URI``; without that variable the store is ``<runs>/mlflow.db``."""

    mlflow: bool = False
    experiment: str | None = None  # MLFLOW_EXPERIMENT_NAME wins, then this, then "edgeseg"
    # Seconds a build waits for the tracking server in all: past it the build ends with a
    # warning, and `edgeseg runs DIR --log-to-mlflow NAME` logs the run from its files later.
    timeout_s: float = Field(30.0, gt=0, le=3600)


class Recipe(_Strict):
    """A whole edgeseg recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME)
    seed: int = 0
    data: DataSpec
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    adapt: AdaptSpec = AdaptSpec()
    compress: CompressSpec = CompressSpec()
    export: ExportSpec = ExportSpec()
    bench: BenchSection = BenchSection()
    gates: GatesSpec = GatesSpec()
    tracking: TrackingSpec = TrackingSpec()
    select: SelectSpec | None = None
    sweep: SweepSpec | None = None

    @model_validator(mode="after")
    def _selectable(self) -> Recipe:
        if self.select is None:
            return self
        devices = ["local", *(d.name for d in self.bench.remote)]
        if self.select.device not in devices:
            raise ValueError(
                f"select.device: {self.select.device!r} is not a bench device"
                f"{did_you_mean(self.select.device, devices)}; devices are {', '.join(devices)}"
            )
        if (self.select.min_miou is not None or self.select.objective == "miou") and not self.bench.accuracy:
            raise ValueError("select by mIoU needs bench.accuracy: true (nothing would be measured)")
        timed = self.select.max_latency_ms is not None or self.select.objective == "latency"
        if timed and 1 not in self.bench.batches:
            raise ValueError("select uses the batch-1 latency: add 1 to bench.batches")
        return self

    @model_validator(mode="after")
    def _searchable(self) -> Recipe:
        search = self.sweep.search if self.sweep else None
        if search is None:
            return self
        if "miou" in search.objectives and not self.bench.accuracy:
            raise ValueError("sweep.search.objectives: miou needs bench.accuracy: true (nothing would be measured)")
        if "latency_ms" in search.objectives and 1 not in self.bench.batches:
            raise ValueError("sweep.search.objectives: latency_ms is the batch-1 p50: add 1 to bench.batches")
        return self

    @model_validator(mode="after")
    def _gates_measurable(self) -> Recipe:
        g = self.gates
        if (
            g.max_miou_drop is not None or g.min_miou is not None or g.min_pixel_agreement is not None
        ) and not self.bench.accuracy:
            raise ValueError("gates on mIoU or agreement need bench.accuracy: true (nothing would be measured)")
        if (g.max_miou_drop is not None or g.min_pixel_agreement is not None) and not self.bench.reference:
            raise ValueError(
                "gates.max_miou_drop and gates.min_pixel_agreement compare with the fp32 model: "
                "set bench.reference: true"
            )
        if g.max_latency_ms is not None and 1 not in self.bench.batches:
            raise ValueError("gates.max_latency_ms is checked at batch 1: add 1 to bench.batches")
        if g.min_retention is not None and not (self.bench.accuracy and self.bench.robustness.enabled):
            raise ValueError(
                "gates.min_retention needs bench.robustness.enabled: true and bench.accuracy: true "
                "(no corrupted score would be measured)"
            )
        if g.max_target_drop is not None and not (self.bench.accuracy and self.bench.emulate and self.bench.reference):
            raise ValueError(
                "gates.max_target_drop needs bench.accuracy, bench.emulate and bench.reference: true "
                "(the target's scores and the fp32 one would not be measured)"
            )
        return self

    @model_validator(mode="after")
    def _splits_exist(self) -> Recipe:
        if "fold" in self.eval.splits and self.data.validation.kind == "split":
            raise ValueError(
                "eval.splits: 'fold' is the fold data.validation carves out of the training split; "
                "set data.validation.kind (groups, group_fraction or group_kfold) or drop it"
            )
        if "val" in self.eval.splits and self.data.train_on == "train+val":
            raise ValueError(
                "eval.splits: 'val' is trained on (data.train_on: train+val); score on fold or test instead"
            )
        return self

    def digest(self) -> str:
        """Stable sha256 of the resolved recipe (key order and formatting do not matter)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
