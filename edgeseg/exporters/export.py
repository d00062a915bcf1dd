"""Exporters: an edgeseg checkpoint -> a verified, self-describing artifact bundle.

Which builder makes a format, and which runtime verifies it, come from ``edgeseg.formats``.
Every builder writes one artifact into the bundle directory and names the PyTorch module it
must agree with; then ``export_bundle`` runs the artifact through its runtime on real
validation images, compares, fails loudly below the recipe's limits, and writes ``model.json``
with the figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edgeseg._io import staged_dir, write_text_atomic
from edgeseg.bundle import SIDECAR
from edgeseg.data.transforms import resize_images
from edgeseg.errors import DependencyError
from edgeseg.exporters import onnx_export
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, library_versions, static_metadata
from edgeseg.exporters.verify import verify_on_targets
from edgeseg.formats import entry_point, get_format, toolchain
from edgeseg.recipe import ExportTarget, Recipe
from edgeseg.runtimes.session import require

log = logging.getLogger(__name__)


def check_toolchains(targets: list[ExportTarget], default_target: str = "any", emulate: bool = True) -> None:
    """Fail now, not after hours of training, when a target cannot be built on this machine
    (or, with ``emulate``, its int8 cannot be checked on the instruction sets it will run on).

    Raises:
        DependencyError: naming the target, what is missing and how to get it.
    """
    from edgeseg.runtimes.tensorrt_rt import gpu_facts

    for i, target in enumerate(targets):
        fmt = get_format(target.format)
        try:
            for module, install in toolchain(fmt):
                require(module, install)
            if target.precision == "int8" and fmt.quantizer == "nncf":
                require("nncf", "pip install nncf")
            if fmt.verify_runtime.device == "cuda":
                gpu_facts()
            if emulate and target.precision == "int8":
                _check_emulation(fmt.verify_runtime, target.deployed_on(default_target))
        except DependencyError as exc:
            raise DependencyError(
                f"export.targets[{i}] ({target.name}) cannot be built on this machine: {exc}. "
                "Remove the target from the recipe, or build where it can run."
            ) from None


def _check_emulation(runtime, target_name: str) -> None:
    """qemu (and the arm64 userland) for the instruction sets the export will check under emulation."""
    from edgeseg.runtimes.debian_cache import userland
    from edgeseg.runtimes.emulate import emulation_plan, qemu_binary

    for isa in emulation_plan(target_name):
        if isa in runtime.emulated_on:
            qemu_binary(isa)
            if isa == "arm64":
                userland(runtime.name)


def prepare_job(checkpoint: Path, recipe: Recipe, target: ExportTarget) -> ExportJob:
    """Load the checkpoint and the validation images an export is checked on."""
    from edgeseg.data import load_split
    from edgeseg.data.splits import selection_split
    from edgeseg.models.checkpoint import load_model

    get_format(target.format)
    loaded = load_model(checkpoint)
    loaded.model.output_stride = recipe.export.output_stride  # this job's own copy of the model
    size = tuple(recipe.export.input_size or recipe.data.image_size or loaded.input_size)
    val = load_split(recipe.data, selection_split(recipe.data), recipe.seed)
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
    fmt = get_format(job.target.format)
    job.require_float_model()
    out.mkdir(parents=True, exist_ok=True)
    built: Built = entry_point(fmt.exporter)(job, out)
    artifact = out / built.file
    meta = static_metadata(job, built.file, built.io)
    if artifact.suffix == ".onnx":
        onnx_export.check(artifact)
        onnx_export.embed_metadata(artifact, meta)
    meta["artifact"].update(built.facts)
    meta["artifact"]["size_bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    meta["verification"] = entry_point(fmt.verifier)(job, artifact, built)
    meta["verification"]["on_target"] = verify_on_targets(job, artifact, built)
    meta["proof"] = _prove(job, out, meta)
    write_text_atomic(out / SIDECAR, json.dumps(meta, indent=2))
    return meta


def _prove(job: ExportJob, out: Path, meta: dict) -> dict:
    """proof.npz: the first verification image and the class ids the artifact gives for it
    through its runtime, fed as model.json says (none where no runtime here runs the format)."""
    from edgeseg.bundle import prepare, write_proof
    from edgeseg.runtimes.session import open_session

    image = job.verify_images[0].permute(1, 2, 0).contiguous().numpy()
    verifier = get_format(job.target.format).verify_runtime
    try:
        session = open_session(out / meta["artifact"]["file"], verifier.name, device=verifier.device)
    except DependencyError:  # Core ML off macOS: the digest and the fields still prove the bundle
        return write_proof(out, meta, image, None)
    return write_proof(out, meta, image, session.run(prepare([image], meta)))


def export_checkpoint(checkpoint: Path, recipe: Recipe, target: ExportTarget, out: Path) -> dict:
    """``edgeseg export``: one bundle into ``out``, published atomically (all of it or nothing)."""
    job = prepare_job(checkpoint, recipe, target)
    with staged_dir(out, "model.json") as scratch:
        return export_bundle(job, scratch)


__all__ = ["ExportJob", "export_bundle", "export_checkpoint", "library_versions", "prepare_job", "static_metadata"]
