"""The recipe: one YAML file that says what to train, compress, export and measure.

``load_recipe`` reads the YAML, expands ``${VAR}`` / ``${VAR:-default}`` in string values,
applies ``--set dotted.key=value`` overrides, and validates against a strict pydantic schema.
Every failure becomes a :class:`RecipeError` that names the file, the dotted field and the fix:

    recipes/x.yaml: train.epoch: unknown field (did you mean 'epochs'?)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeseg.corruptions import CORRUPTION_NAMES, SEVERITIES
from edgeseg.errors import RecipeError
from edgeseg.formats import FORMAT_NAMES, FORMATS, PRECISIONS
from edgeseg.registry import did_you_mean

DATASET_NAMES = ("synthetic", "camvid", "folder", "voc", "cityscapes")
BACKBONE_NAMES = (
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "resnet50",
    "mobilenet_v2",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
)
HEAD_NAMES = ("lraspp", "deeplabv3", "deeplabv3plus")

# torchvision segmentation weight enums and the architecture each one fits.
TORCHVISION_SEG_WEIGHTS = {
    "LRASPP_MobileNet_V3_Large_Weights": ("lraspp", "mobilenet_v3_large"),
    "DeepLabV3_MobileNet_V3_Large_Weights": ("deeplabv3", "mobilenet_v3_large"),
    "DeepLabV3_ResNet50_Weights": ("deeplabv3", "resnet50"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The backbones see features at 1/32 of the input: a side below 32 pixels leaves them nothing.
MIN_SIDE = 32
# Masks are uint8 with 255 as the ignore value: at most 255 classes (ids 0..254).
MAX_CLASSES = 255


def _at_least_min_side(size: tuple[int, int]) -> tuple[int, int]:
    if min(size) < MIN_SIDE:
        raise ValueError(
            f"[H, W] must be at least {MIN_SIDE} pixels each (the backbones see the input at 1/32), got {list(size)}"
        )
    return size


Size = Annotated[tuple[int, int], AfterValidator(_at_least_min_side)]
Channel = Annotated[int, Field(ge=0, le=255)]


class SyntheticSpec(_Strict):
    """Size of the generated street-like dataset (used when ``dataset: synthetic``)."""

    num_train: int = Field(160, ge=1)
    num_val: int = Field(40, ge=1)
    height: int = Field(128, ge=MIN_SIDE)
    width: int = Field(160, ge=MIN_SIDE)


class AugmentSpec(_Strict):
    """Joint image/mask training augmentation (torchvision.transforms.v2)."""

    scale: tuple[float, float] = (0.5, 2.0)
    crop: Size | None = None
    hflip: bool = True
    color_jitter: float = Field(0.2, ge=0, le=1)
    blur: float = Field(0.0, ge=0, le=1)  # probability of a Gaussian blur (sigma 0.1-2 px): defocus, motion

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("must be [min, max] with 0 < min <= max")
        return v


# Split names a recipe can evaluate on: the dataset's own splits and the validation fold that
# ``data.validation`` carves out of the training split (``edgeseg.data.splits``).
SPLIT_NAMES = ("train", "val", "test", "fold")


def _one_capture_group(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    if groups != 1:
        raise ValueError(f"needs exactly one capture group, the group name (e.g. '^([^_]+)_'), got {groups}")
    return pattern


class ValidationSpec(_Strict):
    """The images that select the model: early stopping, the best epoch, compression fine-tunes.

    ``split`` keeps the dataset's val split. The others carve a **group-disjoint** fold out of the
    training split (no group on both sides; groups come from ``data.group_pattern``): ``groups``
    names them, ``group_fraction`` takes groups in a seeded order while each brings the fold nearer
    ``fraction`` of the training images, ``group_kfold`` holds out fold ``fold`` of ``folds`` (groups balanced by
    image count, as scikit-learn's GroupKFold assigns them).
    """

    kind: Literal["split", "groups", "group_fraction", "group_kfold"] = "split"
    groups: list[str] = []
    fraction: float = Field(0.2, gt=0, lt=1)
    folds: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ValidationSpec:
        if (self.kind == "groups") != bool(self.groups):
            raise ValueError(
                "kind 'groups' needs data.validation.groups (the groups to hold out), and only it takes them"
            )
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} does not exist: folds are numbered 0..{self.folds - 1}")
        return self


class DataSpec(_Strict):
    """Where the images come from and how they are prepared."""

    dataset: Literal[DATASET_NAMES]
    root: str | None = None
    download: bool = False
    download_url: str | None = None
    class_names: list[str] | None = Field(None, min_length=1, max_length=MAX_CLASSES)
    palette: list[tuple[Channel, Channel, Channel]] | None = Field(None, max_length=MAX_CLASSES)
    ignore_index: int = Field(255, ge=0, le=255)
    image_size: Size | None = None
    train_fraction: float = Field(1.0, gt=0, le=1)
    on_bad_sample: Literal["error", "skip"] = "error"
    group_pattern: Annotated[str | None, AfterValidator(_one_capture_group)] = None
    validation: ValidationSpec = ValidationSpec()
    train_on: Literal["train", "train+val"] = "train"
    near_duplicate_bits: int = Field(8, ge=0, le=64)
    augment: AugmentSpec = AugmentSpec()
    synthetic: SyntheticSpec = SyntheticSpec()
    # A folder of unlabelled images from the target domain (the user's own camera): the build
    # then self-trains on them after fine-tuning (the `adapt` stage, settings in `adapt:`).
    unlabeled: str | None = None

    @model_validator(mode="after")
    def _dataset_needs(self) -> DataSpec:
        if self.dataset != "synthetic" and not self.root:
            raise ValueError(f"dataset '{self.dataset}' needs data.root (a directory)")
        if self.dataset == "folder" and not self.class_names:
            raise ValueError("dataset 'folder' needs data.class_names (one name per class id)")
        if self.train_on == "train+val" and self.validation.kind == "split":
            raise ValueError(
                "data.train_on: train+val trains on the val split, leaving nothing to select on: carve a "
                "group-disjoint fold with data.validation.kind (groups, group_fraction or group_kfold)"
            )
        if self.palette and self.class_names and len(self.palette) != len(self.class_names):
            raise ValueError(
                f"data.palette has {len(self.palette)} colours but data.class_names has "
                f"{len(self.class_names)} names: give one colour per class"
            )
        return self


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


class ModelSpec(_Strict):
    """Architecture and where its starting weights come from."""

    head: Literal[HEAD_NAMES] = "lraspp"
    backbone: Literal[BACKBONE_NAMES] = "mobilenet_v3_large"
    weights: str | None = None
    backbone_weights: str = "imagenet"
    output_stride: Literal[8, 16, 32] | None = None

    @model_validator(mode="after")
    def _weights_fit(self) -> ModelSpec:
        if self.weights is None:
            return self
        enum_name = self.weights.split(".")[0]
        if enum_name not in TORCHVISION_SEG_WEIGHTS:
            raise ValueError(
                f"model.weights '{self.weights}' is not a torchvision segmentation weights name"
                f"{did_you_mean(enum_name, list(TORCHVISION_SEG_WEIGHTS))}; use one of "
                + ", ".join(f"{k}.DEFAULT" for k in TORCHVISION_SEG_WEIGHTS)
            )
        head, backbone = TORCHVISION_SEG_WEIGHTS[enum_name]
        if (self.head, self.backbone) != (head, backbone):
            raise ValueError(
                f"model.weights {enum_name} fits head '{head}' on backbone '{backbone}', "
                f"not '{self.head}' on '{self.backbone}'"
            )
        return self


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


class ExportTarget(_Strict):
    """One artifact to build: a file format at a precision."""

    format: Literal[FORMAT_NAMES]
    precision: Literal[PRECISIONS] = "fp32"

    @property
    def name(self) -> str:
        return f"{self.format}-{self.precision}"

    @model_validator(mode="after")
    def _buildable(self) -> ExportTarget:
        fmt = FORMATS[self.format]
        if self.precision not in fmt.precisions:
            raise ValueError(
                fmt.precision_note
                or f"{fmt.name} is built as {' or '.join(fmt.precisions)}: use precision {fmt.precisions[0]}"
            )
        return self


class CalibrationSpec(_Strict):
    """Images that set INT8 ranges: drawn from the training split, never from val."""

    num_samples: int = Field(64, ge=1)
    method: Literal["nncf", "ort_static"] = "nncf"


class VerifySpec(_Strict):
    """Parity of every artifact with PyTorch on real validation images; below a limit fails.

    Defaults leave room over what healthy exports measure (benchmarks/results/
    export_camvid_lite0.json, CamVid val): fp32 agrees on 100% of pixels with |Δlogit| ~3e-5,
    fp16 on 99.99%, int8 on 99.6% with its fake-quantized reference (99.4% with fp32). A
    broken export (a wrong resize, a mangled graph) lands far below.
    """

    num_images: int = Field(8, ge=1)
    max_abs_logit_fp32: float = Field(1e-3, gt=0)
    min_agreement_fp32: float = Field(0.999, ge=0, le=1)
    min_agreement_fp16: float = Field(0.995, ge=0, le=1)
    min_agreement_int8: float = Field(0.97, ge=0, le=1)


class TensorRTSpec(_Strict):
    """TensorRT builder settings (used only on a machine with an NVIDIA GPU)."""

    workspace_gb: float = Field(2.0, gt=0)
    max_batch: int = Field(8, ge=1)
    min_hw: Size | None = None
    max_hw: Size | None = None


class LiteRTSpec(_Strict):
    """LiteRT (``.tflite``) options: ``nhwc`` takes N×H×W×3 input, the layout Android camera
    pipelines and bitmaps hand over (no transposes in the graph or in the app)."""

    nhwc: bool = True


class CoreMLSpec(_Strict):
    """Core ML options: ``image_input`` makes the input an RGB image that Vision
    (``VNCoreMLRequest``) and a ``CVPixelBuffer`` feed directly. The normalisation then goes into
    the graph whatever ``export.fold_preprocessing`` says: Core ML's image input scales every
    channel by one number, ImageNet normalisation divides each by its own std."""

    image_input: bool = True
    minimum_deployment_target: Literal["iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15"] = "iOS16"


class PT2ESpec(_Strict):
    """int8 for ExecuTorch and LiteRT (PT2E flow): modules kept in float, and the fallback.

    ``float_modules`` names modules of the segmentation model (e.g. ``backbone.net.conv_stem``).
    ``max_miou_drop`` ranks the model's blocks by the mIoU each costs quantized alone (on
    ``sensitivity_images`` of the selection split) and keeps the worst in float, at most
    ``max_fallback_groups``, until the drop is within budget. Measured on CamVid Lite0: plain
    PTQ loses 2.2 mIoU; the stem and first block in float bring it within 0.2.
    """

    float_modules: list[str] = []
    max_miou_drop: float | None = Field(None, gt=0)
    max_fallback_groups: int = Field(4, ge=1)
    sensitivity_images: int = Field(32, ge=1)


class ExportSpec(_Strict):
    """Deployable artifacts: which formats and precisions, input shape, in-graph pre/post."""

    targets: list[ExportTarget] = [ExportTarget(format="onnx", precision="fp32")]
    opset: int = Field(17, ge=13, le=21)
    input_size: Size | None = None
    dynamic_batch: bool = False
    dynamic_hw: bool = False
    output: Literal["logits", "class_map"] = "logits"
    fold_preprocessing: bool = False
    calibration: CalibrationSpec = CalibrationSpec()
    verify: VerifySpec = VerifySpec()
    tensorrt: TensorRTSpec = TensorRTSpec()
    litert: LiteRTSpec = LiteRTSpec()
    coreml: CoreMLSpec = CoreMLSpec()
    pt2e: PT2ESpec = PT2ESpec()

    @model_validator(mode="after")
    def _unique_targets(self) -> ExportSpec:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"export.targets lists {', '.join(dupes)} more than once: keep one of each")
        return self

    @model_validator(mode="after")
    def _mobile_fixed_shape(self) -> ExportSpec:
        fixed = sorted({t.format for t in self.targets if FORMATS[t.format].fixed_shape})
        if fixed and (self.dynamic_batch or self.dynamic_hw):
            raise ValueError(
                f"{', '.join(fixed)} models are exported at a fixed input size and batch 1: set "
                "export.dynamic_batch and export.dynamic_hw to false, or export them from another recipe"
            )
        return self


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
    budget. ``target: tensorrt`` makes every quantizer signed and symmetric (TensorRT's only
    INT8); ``cpu`` lets activations after ReLU use the unsigned range. QAT can distil from the
    float model it started from (``distill.enabled: true``).
    """

    kind: Literal["qat", "ptq"]
    calibration_samples: int = Field(128, ge=1)
    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-4, gt=0)
    time_budget_min: float | None = Field(None, gt=0)
    target: Literal["cpu", "tensorrt"] = "cpu"
    ignored: list[str] = []
    max_miou_drop: float | None = Field(None, gt=0)
    max_fallback_groups: int = Field(8, ge=1)
    sensitivity_images: int = Field(32, ge=1)
    distill: DistillSpec = DistillSpec(enabled=False)


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


class RobustnessSpec(_Strict):
    """Score every artifact through its runtime on corrupted copies of the headline split's
    images too (``edgeseg/corruptions.py``: seeded, identical pixels for every artifact)."""

    enabled: bool = False
    corruptions: list[Literal[CORRUPTION_NAMES]] = Field(list(CORRUPTION_NAMES), min_length=1)
    severities: list[Literal[SEVERITIES]] = Field([1, 3, 5], min_length=1)
    max_images: int | None = Field(None, ge=1)  # the first N images of the split (a fixed set)

    @field_validator("corruptions", "severities")
    @classmethod
    def _distinct(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError("lists an entry more than once: keep one of each")
        return v

    def bench_settings(self) -> dict | None:
        """What ``BenchSpec.robustness`` takes, or None when off."""
        return self.model_dump(mode="json", exclude={"enabled"}) if self.enabled else None


class BenchSection(_Strict):
    """How ``edgeseg build`` measures every artifact (the options of ``edgeseg bench``)."""

    threads: int | None = Field(None, ge=1)
    batches: list[int] = Field([1], min_length=1)
    iterations: int = Field(100, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    warmup: int = Field(10, ge=0)
    rounds: int = Field(5, ge=1)
    accuracy: bool = True
    max_images: int | None = Field(None, ge=1)
    reference: bool = True  # the fp32 PyTorch model: a table row and the pixel-agreement baseline
    remote: list[RemoteDevice] = []  # devices that bench every artifact too (over SSH)
    robustness: RobustnessSpec = RobustnessSpec()

    @field_validator("remote")
    @classmethod
    def _distinct_devices(cls, v: list[RemoteDevice]) -> list[RemoteDevice]:
        names = [d.name for d in v]
        if len(set(names)) != len(names) or "local" in names:
            raise ValueError("bench.remote: device names must be distinct and not 'local' (the build machine)")
        return v

    @field_validator("batches")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError("bench.batches: batch sizes must be >= 1")
        return v


class GatesSpec(_Strict):
    """Limits every artifact must meet on the bench machine, or the build fails (exit 3).

    ``max_miou_drop`` and ``min_pixel_agreement`` compare with the fp32 PyTorch model; latency is
    the p50 at batch 1. ``max_eval_overlap`` is checked by the data stage, before training: the
    share of the headline evaluation split (``eval.splits[0]``) that is a near-duplicate of a
    training image or shares a group with one. A rejected artifact stays on disk for inspection and is marked rejected
    in the manifest and the report, never presented as deployable.
    """

    max_miou_drop: float | None = Field(None, ge=0)
    min_miou: float | None = Field(None, ge=0, le=100)
    max_latency_ms: float | None = Field(None, gt=0)
    min_pixel_agreement: float | None = Field(None, ge=0, le=1)
    max_eval_overlap: float | None = Field(None, ge=0, le=1)
    min_retention: float | None = Field(None, ge=0)  # corrupted / clean mIoU (needs bench.robustness)


class RemoteDevice(_Strict):
    """A device reached over SSH (the system ``ssh``: the user's keys and ``~/.ssh/config``).

    ``host`` is ``[user@]host[:port]`` or a ``Host`` alias of the SSH config. ``edgeseg`` is the
    command on the device (a venv's ``bin/edgeseg`` when it is not on the login PATH).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    host: str = Field(min_length=1)
    edgeseg: str = "edgeseg"
    ssh_config: str | None = None
    workdir: str | None = None  # default: a fresh temporary directory on the device


class SelectSpec(_Strict):
    """Pick the deployable artifact: the best by ``objective`` among those within every limit.

    Limits apply to the figures measured on ``device`` (``local``: the build machine; else a
    ``bench.remote`` entry). Latency is the batch-1 p50; a figure within ``noise_sigmas``
    standard deviations of its limit (the p50's spread across rounds) is flagged as within noise.
    """

    max_latency_ms: float | None = Field(None, gt=0)
    max_peak_mb: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)
    min_miou: float | None = Field(None, ge=0, le=100)
    objective: Literal["miou", "latency", "size"] = "miou"
    device: str = "local"
    noise_sigmas: float = Field(2.0, ge=0)
    miou_tie: float = Field(0.2, ge=0)  # mIoU points within which two artifacts count as tied


class SweepSpec(_Strict):
    """Variants of this recipe: every combination of the grid's values is one build.

    Keys are dotted recipe fields as ``--set`` takes them, with list items as ``[i]``
    (``compress.steps[0].target_macs``). The variants share every stage they have in common.
    """

    grid: dict[str, list[Any]] = Field(min_length=1)
    jobs: int = Field(1, ge=1)

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"sweep.grid.{key}: give at least one value")
            if key.startswith(("sweep", "name")):
                raise ValueError(f"sweep.grid.{key}: a sweep varies the build, not its name or the sweep itself")
        return grid


class TrackingSpec(_Strict):
    """Experiment tracking. MLflow logs every build when ``mlflow`` is true or the environment
    sets ``MLFLOW_TRACKING_URI``; without that variable the store is ``<runs>/mlflow.db``."""

    mlflow: bool = False
    experiment: str | None = None  # MLFLOW_EXPERIMENT_NAME wins, then this, then "edgeseg"


class Recipe(_Strict):
    """A whole edgeseg recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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


# ---------------------------------------------------------------------------------------------
# Loading


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A full recipe has a few hundred values. YAML aliases repeat what they point to: ten aliases
# nested nine deep would expand to 10^9 values, so the expanded size is counted and bounded.
MAX_VALUES = 10_000
MAX_BYTES = 1 << 20


class _RecipeLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the later block would win silently)."""


def _mapping_without_duplicates(loader: _RecipeLoader, node: yaml.MappingNode) -> dict:
    first_line: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise _DuplicateKey(key, first_line[key], line)
        first_line[key] = line
    return loader.construct_mapping(node, deep=True)


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


_RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_recipe(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, expand, override and validate a recipe file.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings; values are parsed as YAML (``3``, ``[1, 2]``).

    Returns:
        The validated, frozen :class:`Recipe`.

    Raises:
        RecipeError: naming the file and dotted field of every problem.
    """
    path = Path(path)
    raw = _read_yaml(path)
    _check_size(raw, path)
    raw = _expand_env(raw, path, ())
    for override in overrides:
        _apply_override(raw, override, path)
    return recipe_from_dict(raw, source=str(path))


def apply_overrides(recipe: Recipe, overrides: list[str] | tuple[str, ...], source: str) -> Recipe:
    """A copy of ``recipe`` with ``--set`` overrides applied and validated again."""
    if not overrides:
        return recipe
    raw = recipe.model_dump(mode="json")
    for override in overrides:
        _apply_override(raw, override, Path(source))
    return recipe_from_dict(raw, source=source)


def recipe_from_dict(raw: Any, source: str = "<recipe>") -> Recipe:
    """Validate an already-parsed recipe mapping; errors name ``source``."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: the recipe must be a mapping of fields, got {_kind(raw)}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError("\n".join(_explain(source, err) for err in exc.errors())) from None


def parse_target(format_: str, precision: str, source: str = "--format/--precision") -> ExportTarget:
    """An export target given on the command line, validated like a recipe entry."""
    try:
        return ExportTarget.model_validate({"format": format_, "precision": precision})
    except ValidationError as exc:
        raise RecipeError("\n".join(_explain(source, err) for err in exc.errors())) from None


def _check_size(raw: Any, path: Path) -> None:
    """Refuse a recipe whose aliases expand it beyond ``MAX_VALUES`` (counted without expanding)."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        if id(value) not in sizes:  # an alias is the same object: counted once, multiplied by its uses
            children = value.values() if isinstance(value, dict) else value
            sizes[id(value)] = 1 + sum(size(child) for child in children)
        return sizes[id(value)]

    total = size(raw)
    if total > MAX_VALUES:
        raise RecipeError(
            f"{path}: the recipe expands to {total:,} values, more than the {MAX_VALUES:,} edgeseg accepts "
            "(YAML aliases repeat what they point to); write the values out or use fewer aliases"
        )


def _read_yaml(path: Path) -> Any:
    try:
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise RecipeError(f"{path}: {path.stat().st_size:,} bytes; a recipe is at most {MAX_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from None
    try:
        return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader: plain data only
    except _DuplicateKey as dup:
        raise RecipeError(
            f"{path}: line {dup.second}: key {dup.key!r} is given twice in one section (first at line {dup.first}); "
            "keep one (the later one would silently replace the earlier)"
        ) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecipeError(f"{path}: not valid YAML{where}: {problem}") from None


def _expand_env(value: Any, path: Path, loc: tuple) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _expand_env(v, path, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise RecipeError(
            f"{path}: {_dotted(loc)}: environment variable {name} is not set (set it, or write ${{{name}:-default}})"
        )

    return _ENV_PATTERN.sub(substitute, value)


def _apply_override(raw: Any, override: str, path: Path) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {override!r}: expected dotted.key=value (e.g. train.epochs=3)")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: --set {key}: the recipe is not a mapping of fields")
    node = raw
    for i, part in enumerate(parts):
        name, index = _indexed(part, key)
        where = ".".join(parts[: i + 1])
        if not isinstance(node, dict):
            raise RecipeError(f"{path}: --set {key}: {'.'.join(parts[:i])} is a value, not a section")
        last = i == len(parts) - 1
        if index is None:
            if last:
                node[name] = value
            else:
                if node.get(name) is None:
                    node[name] = {}
                node = node[name]
            continue
        items = node.get(name)
        if not isinstance(items, list) or not -len(items) <= index < len(items):
            count = len(items) if isinstance(items, list) else 0
            raise RecipeError(f"{path}: --set {key}: {where}: the recipe's {name} has {count} item(s)")
        if last:
            items[index] = value
        else:
            node = items[index]


def _indexed(part: str, key: str) -> tuple[str, int | None]:
    """``steps[0]`` -> ("steps", 0); ``epochs`` -> ("epochs", None)."""
    match = re.fullmatch(r"([^\[\]]+)(?:\[(-?\d+)\])?", part.strip())
    if match is None:
        raise RecipeError(f"--set {key}: {part!r} is not a field name or name[index]")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def _explain(source: str, err: dict) -> str:
    loc = _without_union_tags(tuple(err["loc"]))
    field = _dotted(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_fields(tuple(err["loc"])[:-1])
        return f"{source}: {field}: unknown field{did_you_mean(str(loc[-1]), known)}"
    if kind == "missing":
        return f"{source}: {field}: required field is missing"
    if kind in ("literal_error", "union_tag_invalid"):
        expected = re.findall(
            r"'([^']*)'|(\d+)", err["ctx"]["expected_tags" if kind == "union_tag_invalid" else "expected"]
        )
        options = [a or b for a, b in expected]
        value = err["ctx"]["tag"] if kind == "union_tag_invalid" else err["input"]
        field = f"{field}.kind" if kind == "union_tag_invalid" else field
        return f"{source}: {field}: {value!r} is not one of {', '.join(options)}{did_you_mean(str(value), options)}"
    if kind == "union_tag_not_found":
        return f"{source}: {field}.kind: required field is missing (one of {', '.join(STEP_KINDS)})"
    message = err["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{source}: {field}: {message}"
    return f"{source}: {field}: {message}, got {_short(err.get('input'))}"


def _without_union_tags(loc: tuple) -> tuple:
    """pydantic puts the tag of a tagged union in the location (steps.0.prune.ratio): drop it."""
    return tuple(part for i, part in enumerate(loc) if not (part in STEP_KINDS and i and isinstance(loc[i - 1], int)))


def _known_fields(loc: tuple) -> list[str]:
    """Field names of the schema section at pydantic's ``loc`` (for "did you mean")."""
    node: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if get_origin(node) in (Union, UnionType):  # the compress steps' tagged union: the tag picks the member
            node = next((m for m in get_args(node) if part in get_args(m.model_fields["kind"].annotation)), None)
            continue
        field = node.model_fields.get(part) if isinstance(node, type) and issubclass(node, BaseModel) else None
        node = getattr(field, "annotation", None)
        if get_origin(node) is list:
            node = get_args(node)[0]
        if get_origin(node) is Annotated:
            node = get_args(node)[0]
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return "an empty file" if value is None else f"a {type(value).__name__}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def dotted_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """A resolved recipe (``model_dump``) as ``{"train.epochs": 3, ...}``: the names ``--set`` takes."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(dotted_fields(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (what ``edgeseg recipe show`` prints)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
