"""Exporters: an edgeseg checkpoint -> a verified, self-describing artifact bundle.

``FORMATS`` maps a recipe's ``export.targets[].format`` to a builder. Every builder writes one
artifact into the bundle directory and names the PyTorch module it must agree with; then
``export_bundle`` runs the artifact through its runtime on real validation images, compares,
fails loudly below the recipe's limits, and writes ``model.json`` with the figures.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from edgeseg._io import write_text_atomic
from edgeseg.bundle import ARTIFACT_FILES, BUNDLE_FORMAT, SIDECAR
from edgeseg.data.transforms import resize_images
from edgeseg.errors import DependencyError, ExportError
from edgeseg.exporters import onnx_export
from edgeseg.exporters.deploy import DeployModel
from edgeseg.recipe import ExportSpec, ExportTarget, Recipe
from edgeseg.registry import lookup
from edgeseg.runtimes import require

log = logging.getLogger(__name__)

_VERSIONED = ("edgeseg", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "openvino", "nncf", "tensorrt")


@dataclass
class Built:
    """What a builder produced: the artifact file, its PyTorch reference, facts for model.json."""

    file: str
    reference: torch.nn.Module
    reference_kind: str
    facts: dict = field(default_factory=dict)


@dataclass
class ExportJob:
    """Everything a builder needs, computed once per export."""

    loaded: object  # edgeseg.train.checkpoint.LoadedCheckpoint
    recipe: Recipe
    target: ExportTarget
    input_size: tuple[int, int]
    verify_images: torch.Tensor  # uint8 N×3×H×W at input_size, from the validation split

    @property
    def spec(self) -> ExportSpec:
        return self.recipe.export

    @property
    def quantized(self) -> bool:
        """The checkpoint comes from a quantization step: int8 exports take its ranges as they are."""
        from edgeseg.compress import int8_facts

        return int8_facts(self.loaded.raw.get("compression")) is not None

    def require_float_model(self) -> None:
        if self.quantized and self.target.precision != "int8":
            raise ExportError(
                f"{self.target.name}: the checkpoint is quantized (int8); export fp32/fp16 from the float "
                "checkpoint instead (runs/<name>/compress/float.pt after pruning, else runs/<name>/train/best.pt)"
            )

    def deploy(self, inner: torch.nn.Module) -> DeployModel:
        return DeployModel(inner, self.loaded.mean, self.loaded.std, fold_preprocessing=self.spec.fold_preprocessing, output=self.spec.output).eval()

    @cached_property
    def model_facts(self) -> dict:
        """Parameters and MACs at the export input size (what ``edgeseg bench`` reports)."""
        from edgeseg.compress import model_facts

        return model_facts(self.loaded.model, self.input_size)

    @cached_property
    def fp32(self) -> DeployModel:
        return self.deploy(self.loaded.model)

    def model_input(self, images_u8: torch.Tensor) -> torch.Tensor:
        """What the exported graph takes: uint8 pixels if preprocessing is folded, else normalised."""
        from edgeseg.data.transforms import normalize

        return images_u8 if self.spec.fold_preprocessing else normalize(images_u8, self.loaded.mean, self.loaded.std)

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
            module, self.example(), path, opset=self.spec.opset, output_kind=self.spec.output,
            dynamic_batch=self.spec.dynamic_batch, dynamic_hw=self.spec.dynamic_hw,
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


# --------------------------------------------------------------------------------------------
# Builders


def _onnx(job: ExportJob, out: Path) -> Built:
    path = out / ARTIFACT_FILES["onnx"]
    precision = job.target.precision
    if precision == "fp32":
        facts = job.onnx_fp32(path)
        return Built(path.name, job.fp32, "fp32", facts)
    if precision == "fp16":
        fp32 = out / ".fp32.onnx"
        facts = job.onnx_fp32(fp32)
        onnx_export.to_fp16(fp32, path)
        fp32.unlink()
        onnx_export.simplify(path)  # also restores topological order after the Cast insertions
        return Built(path.name, job.fp32, "fp32", facts)
    return _onnx_int8(job, path, for_tensorrt=False)


def _onnx_int8(job: ExportJob, path: Path, *, for_tensorrt: bool) -> Built:
    if job.quantized:
        return _onnx_from_quantized(job, path, for_tensorrt=for_tensorrt)
    method = "nncf" if for_tensorrt else job.spec.calibration.method
    if method == "ort_static":
        fp32 = path.with_name(".fp32.onnx")
        job.onnx_fp32(fp32)
        onnx_export.ort_static_int8(fp32, path, job.calibration_inputs())
        fp32.unlink()
        return Built(path.name, job.fp32, "fp32", {"quantization": "onnxruntime static PTQ (QDQ, u8 activations, per-channel s8 weights)"})
    from edgeseg.compress.quantize import quantize_ptq

    quantized = quantize_ptq(job.loaded.model, job.calibration_batches(), signed_activations=for_tensorrt)
    reference, facts = job.qdq_onnx(quantized, path, "tensorrt" if for_tensorrt else "onnxruntime")
    kind = "signed symmetric (TensorRT)" if for_tensorrt else "symmetric, u8 activations"
    return Built(path.name, reference, "nncf fake-quantized", {"quantization": f"nncf PTQ, Q/DQ {kind}", "qdq_rewrites": facts})


def _onnx_from_quantized(job: ExportJob, path: Path, *, for_tensorrt: bool, runtime: str = "onnxruntime") -> Built:
    """Q/DQ ONNX of a checkpoint the compression stage quantized (QAT or PTQ): no new ranges."""
    from edgeseg.compress import int8_facts

    compression = int8_facts(job.loaded.raw["compression"])
    if for_tensorrt and compression["target"] != "tensorrt":
        raise ExportError(
            f"{job.target.name}: this checkpoint was quantized for target '{compression['target']}', whose unsigned "
            "activations TensorRT cannot take; quantize with compress.steps[-1].target: tensorrt"
        )
    reference, facts = job.qdq_onnx(job.loaded.model, path, "tensorrt" if for_tensorrt else runtime)
    kept = [k["group"] for k in compression.get("fallback", [])]
    return Built(path.name, reference, "nncf fake-quantized", {"quantization": "from the compression stage (nncf)", "kept_in_float": kept, "qdq_rewrites": facts})


def _ort(job: ExportJob, out: Path) -> Built:
    staging = out / ".onnx"
    staging.mkdir()
    built = _onnx(job, staging)
    onnx_export.check(staging / built.file)
    onnx_export.embed_metadata(staging / built.file, static_metadata(job, "model.ort"))
    onnx_export.to_ort_format(staging / built.file, out)
    shutil.rmtree(staging)
    return Built("model.ort", built.reference, built.reference_kind, {**built.facts, "ort_config": "required_operators_and_types.config"})


def _openvino(job: ExportJob, out: Path) -> Built:
    from edgeseg.exporters import openvino_export

    xml = out / ARTIFACT_FILES["openvino"]
    meta = static_metadata(job, xml.name)
    if job.quantized:  # the compression stage's Q/DQ graph; OpenVINO reads it as FakeQuantize
        source = out / ".int8.onnx"
        built = _onnx_from_quantized(job, source, for_tensorrt=False, runtime="openvino")
        openvino_export.onnx_to_ir(source, xml, compress_to_fp16=False, metadata=meta)
        source.unlink()
        return Built(xml.name, built.reference, built.reference_kind, built.facts)
    fp32 = out / ".fp32.onnx"
    facts = job.onnx_fp32(fp32)
    if job.target.precision == "int8":
        openvino_export.quantize_ir(fp32, xml, job.calibration_inputs(), metadata=meta)
        facts["quantization"] = "nncf PTQ on the OpenVINO model"
    else:
        openvino_export.onnx_to_ir(fp32, xml, compress_to_fp16=job.target.precision == "fp16", metadata=meta)
    fp32.unlink()
    return Built(xml.name, job.fp32, "fp32", facts)


def _tensorrt(job: ExportJob, out: Path) -> Built:
    from edgeseg.exporters.tensorrt_export import build_engine
    from edgeseg.runtimes.tensorrt_rt import gpu_facts

    gpu_facts()  # fail before exporting anything on a machine without a GPU
    engine = out / ARTIFACT_FILES["tensorrt"]
    source = out / ".source.onnx"
    if job.target.precision == "int8":
        built = _onnx_int8(job, source, for_tensorrt=True)
        reference, kind, facts = built.reference, built.reference_kind, built.facts
    else:  # fp16; the recipe schema refuses fp32 engines
        reference, kind, facts = job.fp32, "fp32", job.onnx_fp32(source)
    facts["engine"] = build_engine(source, engine, precision=job.target.precision, spec=job.spec, input_size=job.input_size)
    source.unlink()
    return Built(engine.name, reference, kind, facts)


FORMATS: dict[str, Callable[[ExportJob, Path], Built]] = {
    "onnx": _onnx,
    "ort": _ort,
    "openvino": _openvino,
    "tensorrt": _tensorrt,
}


# What each format needs on this machine to be built and verified (int8 adds NNCF).
TOOLCHAINS: dict[str, list[tuple[str, str]]] = {
    "onnx": [("onnx", "pip install onnx"), ("onnxruntime", "pip install onnxruntime")],
    "ort": [("onnx", "pip install onnx"), ("onnxruntime", "pip install onnxruntime")],
    "openvino": [("onnx", "pip install onnx"), ("openvino", "pip install openvino")],
    "tensorrt": [("onnx", "pip install onnx"), ("tensorrt", 'pip install "edgeseg[tensorrt]" (on the machine with the NVIDIA GPU)')],
}


def check_toolchains(targets: list[ExportTarget]) -> None:
    """Fail now, not after hours of training, when a target cannot be built on this machine.

    Raises:
        DependencyError: naming the target, what is missing and how to get it.
    """
    from edgeseg.runtimes.tensorrt_rt import gpu_facts

    for i, target in enumerate(targets):
        try:
            for module, install in lookup(TOOLCHAINS, target.format, "export format"):
                require(module, install)
            if target.precision == "int8":
                require("nncf", "pip install nncf")
            if target.format == "tensorrt":
                gpu_facts()
        except DependencyError as exc:
            raise DependencyError(f"export.targets[{i}] ({target.name}) cannot be built on this machine: {exc}. "
                                  "Remove the target from the recipe, or build where it can run.") from None


# --------------------------------------------------------------------------------------------
# Metadata


def library_versions() -> dict[str, str]:
    from edgeseg.bench.environment import package_versions

    return package_versions(_VERSIONED)


def static_metadata(job: ExportJob, file: str) -> dict:
    """Everything about the artifact except its verification figures (embedded in the file)."""
    from edgeseg.compress import transforms_of

    spec, (h, w) = job.spec, job.input_size
    batch = "batch" if spec.dynamic_batch else 1
    hh, ww = ("height", "width") if spec.dynamic_hw else (h, w)
    n = len(job.loaded.class_names)
    class_map = spec.output == "class_map"
    return {
        "format": BUNDLE_FORMAT,
        "artifact": {"file": file, "format": job.target.format, "precision": job.target.precision, "opset": spec.opset},
        "input": {
            "name": onnx_export.INPUT_NAME,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "uint8" if spec.fold_preprocessing else "float32",
            "shape": [batch, 3, hh, ww],
            "size": [h, w],
            "dynamic": {"batch": spec.dynamic_batch, "height_width": spec.dynamic_hw},
            "preprocessing": {
                "in_graph": spec.fold_preprocessing,
                "resize": f"bilinear to {h}x{w} (H x W)",
                "mean": list(job.loaded.mean),
                "std": list(job.loaded.std),
                "formula": "pixels as they are (uint8)" if spec.fold_preprocessing else "(pixel / 255 - mean) / std, per RGB channel",
            },
        },
        "output": {
            "name": onnx_export.output_name(spec.output),
            "kind": spec.output,
            "dtype": "uint8" if class_map else "float32",
            "shape": [batch, hh, ww] if class_map else [batch, n, hh, ww],
            "postprocessing": "class ids; resize nearest to the image" if class_map else "argmax over axis 1 -> class ids",
        },
        "classes": {"names": list(job.loaded.class_names), "palette": [list(c) for c in job.loaded.palette], "ignore_index": 255},
        "recipe": {"name": job.recipe.name, "sha256": job.recipe.digest(), "head": job.recipe.model.head, "backbone": job.recipe.model.backbone},
        "compression": [t["kind"] for t in transforms_of(job.loaded.raw.get("compression"))],
        "model": {**job.model_facts, "macs_at": [h, w]},
        "versions": library_versions(),
    }


# --------------------------------------------------------------------------------------------
# Entry point


def prepare_job(checkpoint: Path, recipe: Recipe, target: ExportTarget) -> ExportJob:
    """Load the checkpoint and the validation images an export is checked on."""
    from edgeseg.data import load_split
    from edgeseg.train.checkpoint import load_model

    lookup(FORMATS, target.format, "export format")
    loaded = load_model(checkpoint)
    size = tuple(recipe.export.input_size or recipe.data.image_size or loaded.input_size)
    val = load_split(recipe.data, "val", recipe.seed)
    count = min(recipe.export.verify.num_images, len(val))
    images = resize_images(val.images[:count], size)
    return ExportJob(loaded, recipe, target, size, images)


def export_bundle(job: ExportJob, out: Path) -> dict:
    """Build ``job.target`` into the (empty) directory ``out``; verify; write model.json.

    Returns:
        The model.json contents.

    Raises:
        ExportError: the export failed or the artifact disagrees with PyTorch beyond limits.
        DependencyError: the format's runtime or device is not available here.
    """
    from edgeseg.exporters.verify import verify_bundle

    job.require_float_model()
    out.mkdir(parents=True, exist_ok=True)
    built = lookup(FORMATS, job.target.format, "export format")(job, out)
    artifact = out / built.file
    meta = static_metadata(job, built.file)
    if artifact.suffix == ".onnx":
        onnx_export.check(artifact)
        onnx_export.embed_metadata(artifact, meta)
    meta["artifact"].update(built.facts)
    meta["artifact"]["size_bytes"] = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    meta["verification"] = verify_bundle(job, artifact, built)
    write_text_atomic(out / SIDECAR, json.dumps(meta, indent=2))
    return meta


def export_checkpoint(checkpoint: Path, recipe: Recipe, target: ExportTarget, out: Path) -> dict:
    """``edgeseg export``: one bundle into ``out``, published atomically (all of it or nothing)."""
    job = prepare_job(checkpoint, recipe, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        meta = export_bundle(job, scratch)
        if out.exists():
            shutil.rmtree(out)
        os.replace(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return meta


__all__ = ["FORMATS", "ExportJob", "export_bundle", "export_checkpoint", "prepare_job", "static_metadata"]
