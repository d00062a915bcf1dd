"""Core ML (``.mlpackage``, an ML program): what iOS and macOS apps load, directly or through
Vision's ``VNCoreMLRequest``. fp16 compute, or 8-bit weights (``linear_quantize_weights``:
activations stay fp16; calibrating activations needs Apple's runtime, which runs on macOS only).

Converted from ``torch.export`` (the trace path fails on timm backbones). The edgeseg metadata is
in ``user_defined_metadata["edgeseg"]`` with the class names in ``classes``.

Verification: on macOS the package is run through Core ML like every other format. On any other
OS Apple's runtime cannot run: the package is reloaded and its interface, metadata, weights and
MIL program are checked against what was asked, and model.json says plainly that it is
unverified on device.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

import torch

from edgeseg.bundle import METADATA_KEY
from edgeseg.errors import ExportError
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, static_metadata
from edgeseg.formats import FORMATS
from edgeseg.runtimes.session import require

# Core ML has no uint8 tensor output: the in-graph argmax comes out as int32.
CLASS_MAP_DTYPE = "int32"


def _convert(job: ExportJob, module: torch.nn.Module):
    ct = require("coremltools")
    example = job.example()
    if job.spec.coreml.image_input:  # Vision hands over 0-255 RGB; the graph normalises
        example = example.float()
        inputs = [ct.ImageType(name="image", shape=tuple(example.shape), color_layout=ct.colorlayout.RGB)]
    else:
        dtype = None if example.dtype == torch.float32 else _np_dtype(example)
        inputs = [ct.TensorType(name="image", shape=tuple(example.shape), dtype=dtype)]
    program = torch.export.export(module, (example,)).run_decompositions({})
    return ct.convert(
        program,
        inputs=inputs,
        outputs=[ct.TensorType(name=job.spec.output)],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16,
        minimum_deployment_target=getattr(ct.target, job.spec.coreml.minimum_deployment_target),
    )


def _np_dtype(example: torch.Tensor):
    import numpy as np

    return np.uint8 if example.dtype == torch.uint8 else np.float32


def _quantize_weights(model):
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(
        global_config=cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
    )
    return cto.coreml.linear_quantize_weights(model, config=config)


def io_facts(job: ExportJob) -> dict:
    """The model.json entries Core ML changes: an image input, an int32 class map."""
    io: dict = {}
    if job.spec.coreml.image_input:
        io["input"] = {"dtype": "uint8", "kind": "image", "color": "RGB"}
    if job.spec.output == "class_map":
        io["output"] = {"dtype": CLASS_MAP_DTYPE}
    return io


def build(job: ExportJob, out: Path) -> Built:
    """``model.mlpackage``: an fp16 ML program, with 8-bit weights for int8."""
    path = out / FORMATS["coreml"].file
    with torch.no_grad():
        model = _convert(job, job.fp32)
    facts = {"compute_precision": "fp16", "minimum_deployment_target": job.spec.coreml.minimum_deployment_target}
    if job.target.precision == "int8":
        model = _quantize_weights(model)
        facts["quantization"] = "8-bit symmetric weights (coremltools linear_quantize_weights); fp16 activations"
    io = io_facts(job)
    meta = static_metadata(job, path.name, io)
    model.user_defined_metadata[METADATA_KEY] = json.dumps(meta, sort_keys=True)
    model.user_defined_metadata["classes"] = ",".join(job.loaded.class_names)
    model.short_description = f"edgeseg {job.recipe.name}: semantic segmentation ({job.spec.output})"
    model.save(str(path))
    facts["mil_ops"] = dict(Counter(op.op_type for f in model._mil_program.functions.values() for op in f.operations))
    return Built(path.name, job.fp32, "fp32", facts, io)


def verify(job: ExportJob, artifact: Path, built: Built) -> dict:
    """Through Core ML on macOS; elsewhere the package checks below, labelled as such."""
    from edgeseg.exporters.verify import verify_bundle

    if platform.system() == "Darwin":
        return {**verify_bundle(job, artifact, built), "method": "run through Core ML (macOS)", "on_device": True}
    checks = package_checks(job, artifact, built)
    failed = [f"{name}: {detail}" for name, (ok, detail) in checks.items() if not ok]
    if failed:
        raise ExportError(f"{artifact}: the Core ML package is not what was asked: " + "; ".join(failed))
    return {
        "runtime": "coreml",
        "method": f"package checks on {platform.system()} (interface, metadata, weights, MIL program reloaded) "
        "and the MIL program evaluated op by op in PyTorch; Apple's runtime runs on macOS only and was not run",
        "graph_evaluation": graph_evaluation(job, artifact, built),
        "on_device": False,
        "status": "unverified on device: run `edgeseg bench` on this bundle on a Mac",
        "reference": built.reference_kind,
        "images": 0,
        "agreement": None,
        "agreement_vs_fp32": None,
        "checks": {name: detail for name, (ok, detail) in checks.items()},
        "passed": True,
    }


def package_checks(job: ExportJob, artifact: Path, built: Built) -> dict[str, tuple[bool, str]]:
    """name -> (passed, what was found), from the package as saved on disk."""
    ct = require("coremltools")
    spec = ct.models.MLModel(str(artifact), skip_model_load=True).get_spec()
    h, w = job.input_size
    oh, ow = job.output_size
    first, out = spec.description.input[0], spec.description.output[0]
    if job.spec.coreml.image_input:
        image = first.type.imageType
        got_in = f"image {image.width}x{image.height} colorSpace {image.colorSpace}"
        want_in = f"image {w}x{h} colorSpace {ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB}"
    else:
        got_in, want_in = f"tensor {list(first.type.multiArrayType.shape)}", f"tensor {[1, 3, h, w]}"
    classes = len(job.loaded.class_names)
    want_out = [1, oh, ow] if job.spec.output == "class_map" else [1, classes, oh, ow]
    metadata = json.loads(spec.description.metadata.userDefined[METADATA_KEY])
    ops = _reloaded_ops(spec, artifact)
    quantized = sum(n for op, n in ops.items() if op.startswith("constexpr_"))
    want_quantized = job.target.precision == "int8"
    return {
        "input": (first.name == "image" and got_in == want_in, f"{first.name}: {got_in} (asked {want_in})"),
        "output": (
            out.name == job.spec.output and list(out.type.multiArrayType.shape) == want_out,
            f"{out.name}: {list(out.type.multiArrayType.shape)} (asked {job.spec.output} {want_out})",
        ),
        "metadata": (
            metadata["classes"]["names"] == list(job.loaded.class_names),
            f"{METADATA_KEY} metadata with {len(metadata['classes']['names'])} class names",
        ),
        "weights": (
            (quantized > 0) == want_quantized,
            f"{quantized} 8-bit weight tensors (constexpr dequantize ops)" if quantized else "fp16 weights",
        ),
        "mil_program": (
            _without_constants(ops) == _without_constants(built.facts["mil_ops"]),
            f"reloaded from the package: {sum(_without_constants(ops).values())} ops, as converted",
        ),
    }


def _reloaded_ops(spec, artifact: Path) -> Counter:
    from coremltools.converters.mil.frontend.milproto.load import load

    weights = artifact / "Data" / "com.apple.CoreML" / "weights"
    program = load(spec, spec.specificationVersion, file_weights_dir=str(weights))
    return Counter(op.op_type for f in program.functions.values() for op in f.operations)


def _without_constants(ops: dict) -> dict:
    return {op: n for op, n in ops.items() if op != "const"}


def graph_evaluation(job: ExportJob, artifact: Path, built: Built) -> dict:
    """The saved MIL program, evaluated op by op (``coreml_mil``), against the PyTorch model on
    the verification images; held to the precision's agreement limit. A program with an op the
    evaluator does not implement is reported as not evaluated, not failed."""
    from edgeseg.exporters.coreml_mil import ProgramSession, UnsupportedOp
    from edgeseg.exporters.verify import compare

    try:
        session = ProgramSession(artifact)
        inputs = job.model_input(job.verify_images).float()
        figures = compare(session, built.reference, None, inputs, job.spec.output == "class_map")
    except UnsupportedOp as exc:
        return {"ran": False, "reason": f"the program uses {exc}, which the evaluator does not implement"}
    limit = {"fp16": job.spec.verify.min_agreement_fp16, "int8": job.spec.verify.min_agreement_int8}
    minimum = limit[job.target.precision]
    if figures["agreement"] < minimum:
        raise ExportError(
            f"{artifact}: the Core ML program, evaluated op by op, agrees with PyTorch on "
            f"{figures['agreement']:.4%} of pixels (limit {minimum:.2%}; export.verify.min_agreement_"
            f"{job.target.precision})"
        )
    return {
        "ran": True,
        "what": "fp16-rounded op-by-op evaluation in PyTorch, not Apple's kernels",
        "limit": minimum,
        **figures,
    }
