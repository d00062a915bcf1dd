"""The ``compress:`` section: prune, sparsity, QAT and PTQ steps in recipe order."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from edgeseg.recipe._base import _Strict
from edgeseg.targets import TARGET_NAMES


class DistillSpec(_Strict):
    """Knowledge distillation from the model before the step (the teacher).

    loss = (1 - weight) * task loss + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)),
    per pixel (Hinton et al.; the T^2 keeps gradient scale independent of T).
    """

    enabled: bool = True
    temperature: float = Field(2.0, gt=0)
    weight: float = Field(0.5, ge=0, le=1)


class QuantizeStep(_Strict):
    """INT8 with NNCF: ``ptq`` calibrates only; ``qat`` then fine-tunes with quantizers in place.

    ``max_miou_drop`` turns on the fallback: quantizer groups are ranked by how much mIoU each
    costs when it alone is quantized, and the worst stay in float until the PTQ drop is within
    budget. ``target`` is where the int8 model will run (``edgeseg.targets``): ``any`` and
    ``x86-avx2`` train 7-bit weights (x86 without VNNI saturates 8-bit ones), ``x86-vnni`` and
    ``arm64`` full 8-bit weights, ``cuda`` makes every quantizer signed and symmetric
    (TensorRT's only INT8). QAT can distil from the float model it started from
    (``distill.enabled: true``).
    """

    kind: Literal["qat", "ptq"]
    calibration_samples: int = Field(128, ge=1)
    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-4, gt=0)
    time_budget_min: float | None = Field(None, gt=0)
    target: Literal[TARGET_NAMES] = "any"
    ignored: list[str] = []
    max_miou_drop: float | None = Field(None, gt=0)
    max_fallback_groups: int = Field(8, ge=1)
    sensitivity_images: int = Field(32, ge=1)
    distill: DistillSpec = DistillSpec(enabled=False)

    @field_validator("target", mode="before")
    @classmethod
    def _renamed_targets(cls, value):
        renamed = {"cpu": "any (safe on every CPU), x86-avx2, x86-vnni or arm64", "tensorrt": "cuda"}
        if value in renamed:
            raise ValueError(f"target '{value}' is now named by instruction set: use {renamed[value]}")
        return value


class PruneStep(_Strict):
    """Structured channel pruning with torch-pruning (DepGraph), then fine-tuning.

    Give ``ratio`` (the fraction of channels removed from each prunable layer) or
    ``target_macs`` (the fraction of the model's MACs to keep, e.g. 0.5: the ratio is searched).
    Channel counts are rounded to multiples of ``round_to`` (8 suits SIMD and tensor cores). The
    classifier convs always keep one output per class; ``protected`` names more modules to leave
    alone. ``iterations`` > 1 prunes in equal steps with ``epochs`` of fine-tuning after each.
    After each pruning round BatchNorm statistics are re-estimated on training images.

    Defaults are measured (benchmarks/README.md section 7): right after pruning CamVid's
    LRASPP-Lite0 to half the MACs, LAMP scores ranked globally keep 55 mIoU, per-layer L2
    magnitude 31 (both with BatchNorm re-estimated).
    """

    kind: Literal["prune"]
    ratio: float | None = Field(None, gt=0, lt=1)
    target_macs: float | None = Field(None, gt=0, lt=1)
    importance: Literal["lamp", "l2", "l1", "taylor", "bn_scale", "fpgm", "random"] = "lamp"
    global_pruning: bool = True
    bn_recalibration_images: int = Field(128, ge=0)
    round_to: int = Field(8, ge=1)
    protected: list[str] = []
    iterations: int = Field(1, ge=1)
    epochs: int = Field(10, ge=0)
    lr: float = Field(1e-3, gt=0)
    time_budget_min: float | None = Field(None, gt=0)
    distill: DistillSpec = DistillSpec()

    @model_validator(mode="after")
    def _one_amount(self) -> PruneStep:
        if (self.ratio is None) == (self.target_macs is None):
            raise ValueError(
                "prune needs exactly one of ratio (channels removed per layer, e.g. 0.3) "
                "or target_macs (fraction of MACs kept, e.g. 0.5)"
            )
        return self


class SparsityStep(_Strict):
    """Unstructured magnitude sparsity with ``nncf.prune``: zeros weights, keeps every channel.

    The zeros compress well (smaller zipped files, and kernels that exploit sparsity can use
    them), but dense CPU/GPU kernels multiply by zero just as fast: no latency gain.
    """

    kind: Literal["sparsity"]
    ratio: float = Field(0.5, gt=0, lt=1)
    scope: Literal["global", "local"] = "global"
    epochs: int = Field(3, ge=0)
    lr: float = Field(1e-4, gt=0)
    time_budget_min: float | None = Field(None, gt=0)
    distill: DistillSpec = DistillSpec()


CompressStep = Annotated[PruneStep | SparsityStep | QuantizeStep, Field(discriminator="kind")]

STEP_KINDS = tuple(
    kind for step in (PruneStep, SparsityStep, QuantizeStep) for kind in get_args(step.model_fields["kind"].annotation)
)


class CompressSpec(_Strict):
    """Compression steps, applied in order to the fine-tuned model (e.g. prune -> qat)."""

    steps: list[CompressStep] = []

    @model_validator(mode="after")
    def _quantization_last(self) -> CompressSpec:
        kinds = [s.kind for s in self.steps]
        quantizing = [i for i, k in enumerate(kinds) if k in ("qat", "ptq")]
        if len(quantizing) > 1:
            raise ValueError("compress.steps quantizes more than once: keep one qat or ptq step")
        if quantizing and quantizing[0] != len(kinds) - 1:
            raise ValueError("compress.steps: the qat/ptq step must come last (quantize the final architecture)")
        return self
