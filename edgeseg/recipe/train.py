"""The ``train:``, ``adapt:`` and ``eval:`` sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgeseg.recipe._base import _Strict
from edgeseg.recipe.data import SPLIT_NAMES, AugmentSpec


class AdaptSpec(_Strict):
    """Self-training on ``data.unlabeled``: rounds of pseudo-labelling by the current model (an
    EMA teacher when ``ema_decay`` is set) and training a student on the labelled training images
    plus the pseudo-labelled ones, under ``augment`` (strong, for the student)."""

    rounds: int = Field(2, ge=1)
    epochs: int = Field(3, ge=1)  # student epochs per round
    lr: float = Field(2e-4, gt=0)
    confidence: float = Field(0.9, gt=0, le=1)  # a pixel's pseudo-label is kept above this...
    class_quantile: float = Field(0.5, ge=0, lt=1)  # ...or above this quantile of its class's confidences
    ema_decay: float | None = Field(0.999, gt=0, lt=1)  # the teacher is the student's EMA; None: its weights
    # at least this share of each student epoch is pseudo-labelled images, repeating a small folder
    # (UDA recipes such as DACS mix source and target 1:1); None: each unlabelled image once
    unlabeled_share: float | None = Field(None, gt=0, lt=1)
    augment: AugmentSpec = AugmentSpec(scale=(0.5, 2.0), color_jitter=0.4, blur=0.5)
    # Ship the last model whose predicted class mix on the unlabelled images stayed within
    # DRIFT_TOLERANCE of the fine-tuned model's (train no round after it); False: the last student.
    stop_on_drift: bool = True


class TrainSpec(_Strict):
    """Fine-tuning schedule and loss."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    backbone_lr_mult: float = Field(0.1, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["poly", "cosine", "constant"] = "poly"
    poly_power: float = Field(0.9, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)
    freeze_backbone_epochs: int = Field(0, ge=0)
    # The backbone as `backbone_stages` consecutive slices of its layers, input to output (equal
    # numbers of parameter tensors), for partial freezing, gradual unfreezing and LR decay.
    backbone_stages: int = Field(4, ge=1)
    frozen_stages: int = Field(0, ge=0)  # the first N stages never train (partial fine-tuning)
    # gradual unfreezing: the backbone starts frozen, one more stage from the top trains every N epochs
    unfreeze_every_epochs: int | None = Field(None, ge=1)
    layer_lr_decay: float | None = Field(None, gt=0, le=1)  # stage i from the top trains at backbone LR x decay^i
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    lovasz_weight: float = Field(0.0, ge=0)  # > 0 adds weight x Lovász-softmax to the cross-entropy
    class_weights: Literal["none", "median_frequency"] = "none"
    early_stopping_patience: int | None = Field(None, ge=1)
    # Validate, select and deploy an exponential moving average of the weights (buffers too),
    # updated every step; its effective decay warms up as min(ema_decay, (1 + n) / (10 + n)).
    ema_decay: float | None = Field(None, gt=0, lt=1)
    amp: bool = True
    workers: int = Field(0, ge=0)
    threads: int | None = Field(None, ge=1)
    time_budget_min: float | None = Field(None, gt=0)

    def follow_up(self, epochs: int, lr: float, time_budget_min: float | None, ema_decay: float | None) -> TrainSpec:
        """The schedule of a fine-tune that starts from a trained model (a compression step, a
        self-training round): its epochs and LR, no warm-up, no freezing, no early stopping."""
        return self.model_copy(
            update={
                "epochs": epochs,
                "lr": lr,
                "warmup_epochs": 0.0,
                "freeze_backbone_epochs": 0,
                "frozen_stages": 0,
                "unfreeze_every_epochs": None,
                "layer_lr_decay": None,
                "time_budget_min": time_budget_min,
                "early_stopping_patience": None,
                "ema_decay": ema_decay,
            }
        )

    @model_validator(mode="after")
    def _stages_fit(self) -> TrainSpec:
        if self.frozen_stages > self.backbone_stages:
            raise ValueError(
                f"train.frozen_stages: {self.frozen_stages} is more than train.backbone_stages ({self.backbone_stages})"
            )
        return self


class EvalSpec(_Strict):
    """The splits the build scores the fp32 model on, each broken down by group where the data
    has groups. The first is the headline: bench scores every artifact on it, gates and the
    report use it. ``fold`` is the validation fold ``data.validation`` carves."""

    splits: list[Literal[SPLIT_NAMES]] = Field(["val"], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_split_before_splits(cls, data: Any) -> Any:
        """``eval.split: x``, as recipes and checkpoints written before ``splits`` say it."""
        if isinstance(data, dict) and "split" in data and "splits" not in data:
            data = {**{k: v for k, v in data.items() if k != "split"}, "splits": [data["split"]]}
        return data

    @field_validator("splits")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a split more than once: keep one of each")
        return v

    @property
    def split(self) -> str:
        """The headline split."""
        return self.splits[0]
