"""An export job: the loaded checkpoint, the target and the images it is checked on, plus the
helpers every format's builder shares (ONNX export, calibration, metadata).

A builder is ``build(job, out) -> Built``: it writes one artifact into ``out`` and names the
PyTorch module the artifact must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from edgeseg.bundle import BUNDLE_FORMAT
from edgeseg.data.transforms import resize_images
from edgeseg.errors import ExportError
from edgeseg.exporters import onnx_export
from edgeseg.exporters.deploy import DeployModel
from edgeseg.models.checkpoint import LoadedCheckpoint
from edgeseg.recipe import ExportSpec, ExportTarget, Recipe


@dataclass
class ExportJob:
    """Everything a builder needs, computed once per export."""

    loaded: LoadedCheckpoint
    recipe: Recipe
    target: ExportTarget
    input_size: tuple[int, int]
    verify_images: torch.Tensor  # uint8 N×3×H×W at input_size, from the validation split

    @property
    def spec(self) -> ExportSpec:
        return self.recipe.export

    @property
    def deployment(self):
        """The ``edgeseg.targets.Target`` the artifact is built for (its int8 follows it)."""
        from edgeseg.targets import get_target

        return get_target(self.target.deployed_on(self.spec.target))

    @property
    def quantized(self) -> bool:
        """The checkpoint comes from a quantization step: int8 exports take its ranges as they are."""
        return self.loaded.quantized

    @property
    def fold_preprocessing(self) -> bool:
        """Normalisation in the graph: the recipe asks for it, or a Core ML image input needs it."""
        coreml_image = self.target.format == "coreml" and self.spec.coreml.image_input
        return self.spec.fold_preprocessing or coreml_image

    @property
    def channels_last(self) -> bool:
        """The artifact takes N×H×W×3 (LiteRT's ``nhwc`` option)."""
        return self.target.format == "litert" and self.spec.litert.nhwc

    def require_float_model(self) -> None:
        if self.quantized and self.target.precision != "int8":
            raise ExportError(
                f"{self.target.name}: the checkpoint is quantized (int8); export fp32/fp16 from the float "
                "checkpoint instead (runs/<name>/compress/float.pt after pruning, else runs/<name>/train/best.pt)"
            )

    def deploy(self, inner: torch.nn.Module) -> DeployModel:
        return DeployModel(
            inner,
            self.loaded.mean,
            self.loaded.std,
            fold_preprocessing=self.fold_preprocessing,
            output=self.spec.output,
        ).eval()

    @cached_property
    def model_facts(self) -> dict:
        """Parameters and MACs at the export input size (what ``edgeseg bench`` reports)."""
        from edgeseg.models.builders import model_facts

        return model_facts(self.loaded.model, self.input_size)

    @cached_property
    def fp32(self) -> DeployModel:
        return self.deploy(self.loaded.model)

    @cached_property
    def captured_fp32(self) -> torch.nn.Module:
        """``torch.export`` of the fp32 deploy module, captured once (PT2E quantization copies it)."""
        return torch.export.export(self.fp32, (self.example(),)).module()

    @property
    def output_size(self) -> tuple[int, int]:
        """The output's height and width: the input's, or 1/``export.output_stride`` of it."""
        h, w = self.input_size
        return h // self.spec.output_stride, w // self.spec.output_stride

    def model_input(self, images_u8: torch.Tensor) -> torch.Tensor:
        """What the exported graph takes: uint8 pixels if preprocessing is folded, else normalised."""
        from edgeseg.data.transforms import normalize

        return images_u8 if self.fold_preprocessing else normalize(images_u8, self.loaded.mean, self.loaded.std)

    def example(self) -> torch.Tensor:
        return self.model_input(self.verify_images[:1])

    @cached_property
    def calibration_images(self) -> torch.Tensor:
        """``calibration.num_samples`` training images (seeded), at the input size."""
        from edgeseg.data import load_split

        samples = load_split(self.recipe.data, "train", self.recipe.seed)
        n = min(self.spec.calibration.num_samples, len(samples))
        pick = torch.randperm(len(samples), generator=torch.Generator().manual_seed(self.recipe.seed))[:n]
        return resize_images([samples.images[i] for i in pick.tolist()], self.input_size)

    def calibration_batches(self) -> list[torch.Tensor]:
        """Normalised single-image batches for quantizing the inner (un-wrapped) model."""
        from edgeseg.data.transforms import normalize

        return [normalize(img[None], self.loaded.mean, self.loaded.std) for img in self.calibration_images]

    def calibration_inputs(self) -> list:
        """Single-image numpy batches as the exported graph takes them (ORT / OpenVINO PTQ)."""
        return [self.model_input(img[None]).numpy() for img in self.calibration_images]

    def to_onnx(self, module: torch.nn.Module, path: Path) -> None:
        """Export ``module`` with this job's opset, output kind and dynamic axes."""
        onnx_export.torch_to_onnx(
            module,
            self.example(),
            path,
            opset=self.spec.opset,
            output_kind=self.spec.output,
            dynamic_batch=self.spec.dynamic_batch,
            dynamic_hw=self.spec.dynamic_hw,
        )

    def onnx_fp32(self, path: Path) -> dict:
        self.to_onnx(self.fp32, path)
        return {"simplify": onnx_export.simplify(path)}

    def qdq_onnx(self, quantized: torch.nn.Module, path: Path, runtime: str) -> tuple[DeployModel, dict]:
        """Q/DQ ONNX of an NNCF-quantized model, rewritten for ``runtime``; returns its reference."""
        from edgeseg.compress.quantize import set_qdq_export

        set_qdq_export(quantized)
        reference = self.deploy(quantized)
        self.to_onnx(reference, path)
        return reference, onnx_export.fix_qdq(path, runtime=runtime)


def library_versions() -> dict[str, str]:
    """What an export depends on: the training stack and every format's toolchain."""
    from edgeseg.formats import packages
    from edgeseg.versions import package_versions

    return package_versions(("torch", "torchvision", "onnxslim", "nncf", *packages()))


def target_facts(job: ExportJob) -> dict:
    """Where the artifact is meant to run, what its int8 weights are and why, and the build host."""
    from edgeseg.bench.environment import cpu_flags
    from edgeseg.formats import get_format
    from edgeseg.models.replay import int8_facts
    from edgeseg.targets import host_isa

    target = job.deployment
    facts: dict = {
        "name": target.name,
        "description": target.description,
        "checked_on": list(target.check_on),
        "compute": list(target.compute),  # the float precisions the target's CPUs run (edgeseg.targets)
        "build_host": {"isa": host_isa(), "cpu_flags": cpu_flags()},
    }
    if job.target.precision != "int8":
        return facts
    if get_format(job.target.format).quantizer == "pt2e":
        facts["int8"] = "the runtime's own quantizer at export (XNNPACK's scheme, 8-bit weights)"
    elif job.quantized:
        quantized_for = int8_facts(job.loaded.raw["compression"])["target"]
        facts["int8"] = f"from the compression stage, quantized for target '{quantized_for}'"
    else:
        facts["int8"] = target.why
    return facts


def static_metadata(job: ExportJob, file: str, io: dict | None = None) -> dict:
    """Everything about the artifact except its verification figures (embedded in the file);
    ``io`` holds the "input"/"output" entries a format changes (``Built.io``)."""
    from edgeseg.models.replay import transforms_of

    spec, (h, w) = job.spec, job.input_size
    folded = job.fold_preprocessing
    batch = "batch" if spec.dynamic_batch else 1
    hh, ww = ("height", "width") if spec.dynamic_hw else (h, w)
    stride = spec.output_stride
    oh, ow = (hh, ww) if stride == 1 or spec.dynamic_hw else job.output_size
    n = len(job.loaded.class_names)
    class_map = spec.output == "class_map"
    meta = {
        "format": BUNDLE_FORMAT,
        "artifact": {"file": file, "format": job.target.format, "precision": job.target.precision, "opset": spec.opset},
        "input": {
            "name": onnx_export.INPUT_NAME,
            "layout": "NHWC" if job.channels_last else "NCHW",
            "color": "RGB",
            "dtype": "uint8" if folded else "float32",
            "shape": [batch, hh, ww, 3] if job.channels_last else [batch, 3, hh, ww],
            "size": [h, w],
            "dynamic": {"batch": spec.dynamic_batch, "height_width": spec.dynamic_hw},
            "preprocessing": {
                "in_graph": folded,
                "resize": f"bilinear to {h}x{w} (H x W)",
                "mean": list(job.loaded.mean),
                "std": list(job.loaded.std),
                "formula": "pixels as they are (uint8)" if folded else "(pixel / 255 - mean) / std, per RGB channel",
            },
        },
        "output": {
            "name": onnx_export.output_name(spec.output),
            "kind": spec.output,
            "dtype": "uint8" if class_map else "float32",
            "shape": [batch, oh, ow] if class_map else [batch, n, oh, ow],
            "stride": stride,  # the output is 1/stride of the input's size
            "postprocessing": ("class ids" if class_map else "argmax over axis 1 -> class ids")
            + ("; resize nearest to the image" if class_map or stride > 1 else ""),
        },
        "classes": {
            "names": list(job.loaded.class_names),
            "palette": [list(c) for c in job.loaded.palette],
            "ignore_index": 255,
        },
        "recipe": {
            "name": job.recipe.name,
            "sha256": job.recipe.digest(),
            "head": job.recipe.model.head,
            "backbone": job.recipe.model.backbone,
        },
        "compression": [t["kind"] for t in transforms_of(job.loaded.raw.get("compression"))],
        "target": target_facts(job),
        "model": {**job.model_facts, "macs_at": [h, w]},
        "versions": library_versions(),
    }
    for section, extra in (io or {}).items():
        meta[section].update(extra)
    return meta
