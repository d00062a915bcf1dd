"""The ``export:`` section: targets (format x precision) and their converters' settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeseg.formats import FORMAT_NAMES, FORMATS, PRECISIONS, RUNTIME_NAMES, RUNTIMES
from edgeseg.recipe._base import Size, _Strict
from edgeseg.targets import COMPUTE_PRECISIONS, TARGET_NAMES, TARGETS, targets_offering

# The formats a GPU runs through TensorRT: the only ones the ``cuda`` target suits.
CUDA_FORMATS = ("onnx", "tensorrt")


class ExportTarget(_Strict):
    """One artifact to build: a file format at a precision, for the CPU or GPU it will run on.

    ``target`` (default: ``export.target``) is the instruction set the artifact will run on
    (``edgeseg.targets``): int8 quantization follows it, and the export is verified on its
    numerics. A target given here is part of the artifact's name (``onnx-int8-arm64``), so one
    recipe can build the same format for several devices.

    ``runtimes`` (default: the format's first) and ``compute`` (execution precisions, default
    f32) make the build's points: the bundle is benched and scored once per runtime x compute
    precision that runtime can honour (OpenVINO runs an ``.onnx`` too, and computes bf16 where
    the target offers it), and ``select:`` chooses among the points, so ``deploy/`` says which
    runtime and precision to run the chosen bundle with.
    """

    format: Literal[FORMAT_NAMES]
    precision: Literal[PRECISIONS] = "fp32"
    target: Literal[TARGET_NAMES] | None = None
    runtimes: list[Literal[RUNTIME_NAMES]] | None = Field(None, min_length=1)
    compute: list[Literal[COMPUTE_PRECISIONS]] = Field(["f32"], min_length=1)

    @property
    def name(self) -> str:
        return f"{self.format}-{self.precision}" + (f"-{self.target}" if self.target else "")

    def deployed_on(self, default: str) -> str:
        """The target this artifact is built for: its own, TensorRT's GPU, else the recipe's."""
        return self.target or ("cuda" if self.format == "tensorrt" else default)

    @property
    def bench_runtimes(self) -> list[str]:
        return self.runtimes or [FORMATS[self.format].runtimes[0]]

    def points(self) -> list[tuple[str, str]]:
        """(runtime, compute precision) for every point of this bundle, the default first."""
        return [(rt, p) for rt in self.bench_runtimes for p in self.compute if p in RUNTIMES[rt].precisions]

    @model_validator(mode="after")
    def _runtimes_read_format(self) -> ExportTarget:
        fmt = FORMATS[self.format]
        unable = [rt for rt in self.runtimes or () if rt not in fmt.runtimes]
        if unable:
            able = ", ".join(fmt.runtimes)
            raise ValueError(f"runtimes: {', '.join(unable)} cannot read {fmt.file}: the runtimes that can are {able}")
        if self.runtimes and len(set(self.runtimes)) != len(self.runtimes):
            raise ValueError("runtimes: lists a runtime more than once: keep one of each")
        if len(set(self.compute)) != len(self.compute):
            raise ValueError("compute: lists a precision more than once: keep one of each")
        for precision in self.compute:
            if not any(precision in RUNTIMES[rt].precisions for rt in self.bench_runtimes):
                able = [rt for rt in fmt.runtimes if precision in RUNTIMES[rt].precisions]
                fix = f"add runtimes: [{', '.join(able)}]" if able else f"no runtime of {fmt.name} computes {precision}"
                raise ValueError(f"compute: {', '.join(self.bench_runtimes)} cannot compute in {precision}: {fix}")
        return self

    @model_validator(mode="after")
    def _target_suits_format(self) -> ExportTarget:
        if self.target == "cuda" and self.format not in CUDA_FORMATS:
            raise ValueError(f"target cuda runs through TensorRT: use format {' or '.join(CUDA_FORMATS)}")
        if self.format == "tensorrt" and self.target not in (None, "cuda"):
            raise ValueError("tensorrt engines run on an NVIDIA GPU: use target cuda (or leave it out)")
        return self

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
    # Off skips the int8 checks on the target's other instruction sets under qemu (a minute or
    # more per artifact); model.json then records them as not checked, with this as the reason.
    on_target: bool = True


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
    ``max_fallback_groups``, until the drop is within budget. Plain PTQ, ReLU6 quantized after
    its clamp and calibrated by NNCF, loses 0.16-0.33 mIoU on the quickstart and CamVid Lite0
    (benchmarks/README.md section 30); the fallback is for a model that loses more.
    """

    float_modules: list[str] = []
    max_miou_drop: float | None = Field(None, gt=0)
    max_fallback_groups: int = Field(4, ge=1)
    sensitivity_images: int = Field(32, ge=1)


class ExportSpec(_Strict):
    """Deployable artifacts: which formats and precisions, input shape, in-graph pre/post."""

    targets: list[ExportTarget] = [ExportTarget(format="onnx", precision="fp32")]
    # Where the artifacts will run (edgeseg/targets.py): int8 follows it; "any" is safe on every CPU.
    target: Literal[TARGET_NAMES] = "any"
    opset: int = Field(17, ge=13, le=21)
    input_size: Size | None = None
    dynamic_batch: bool = False
    dynamic_hw: bool = False
    output: Literal["logits", "class_map"] = "logits"
    # 2 or 4: the graph's logits (or class map) at 1/2 or 1/4 of the input size; the app takes
    # class ids there and upsamples the ids (nearest). Less for the runtime to resize and write
    # and for the app to arg-max (benchmarks/README.md section 23: 2 costs CamVid 0.01 mIoU).
    output_stride: Literal[1, 2, 4] = 1
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
    def _compute_on_target(self) -> ExportSpec:
        """A precision is measured and deployed only for a target whose CPUs run it natively:
        the build host's flags never decide what a bundle is offered at."""
        for index, t in enumerate(self.targets):
            where = t.deployed_on(self.target)
            for precision in t.compute:
                if precision not in TARGETS[where].compute:
                    raise ValueError(
                        f"targets[{index}].compute: {precision} is offered only for targets whose CPUs run it "
                        f"({', '.join(targets_offering(precision))}); this bundle is for {where}: set "
                        f"targets[{index}].target (or export.target) to one of them, or drop {precision}"
                    )
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
