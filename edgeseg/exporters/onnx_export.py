"""PyTorch -> ONNX (fp32, fp16, int8 Q/DQ), simplification, metadata, ONNX Runtime Mobile.

Export uses the TorchScript exporter at opset 17: 0.5 s against the dynamo exporter's 4 s with
identical outputs (shared/NOTES.md), and opset 17 loads in every runtime we target (ORT >= 1.13,
OpenVINO, TensorRT 8.6+, ORT Mobile).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from edgeseg.bundle import METADATA_KEY
from edgeseg.errors import ExportError, or_storage
from edgeseg.exporters.built import Built
from edgeseg.formats import FORMATS

if TYPE_CHECKING:  # job.py builds on this module
    from edgeseg.exporters.job import ExportJob

log = logging.getLogger(__name__)

INPUT_NAME = "image"


def output_name(output_kind: str) -> str:
    return "class_map" if output_kind == "class_map" else "logits"


def torch_to_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    opset: int,
    output_kind: str,
    dynamic_batch: bool,
    dynamic_hw: bool,
) -> None:
    """Export ``module`` with input ``image`` and output ``logits`` / ``class_map``."""
    out = output_name(output_kind)
    axes_in, axes_out = {}, {}
    if dynamic_batch:
        axes_in[0] = axes_out[0] = "batch"
    if dynamic_hw:
        axes_in.update({2: "height", 3: "width"})
        axes_out.update({2: "height", 3: "width"} if output_kind == "logits" else {1: "height", 2: "width"})
    dynamic = {INPUT_NAME: axes_in, out: axes_out} if axes_in else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent python values
            torch.onnx.export(
                module.eval(),
                (example,),
                str(path),
                opset_version=opset,
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[out],
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; the user needs what and where
        failed = ExportError(f"{path}: torch.onnx.export failed ({type(exc).__name__}: {exc})")
        raise or_storage(exc, failed, path) from None


def simplify(path: Path) -> dict:
    """onnxslim: constant folding, dead-node and redundant-op removal; runtime-agnostic.

    Chosen over ONNX Runtime's offline optimisation, whose saved graphs at the levels that help
    contain ORT-only fused ops (and at the basic level it does what onnxslim does): the artifact
    must load in OpenVINO, TensorRT and ORT Mobile too. Measured effect in
    benchmarks/results/onnx_simplify.json.
    """
    import onnx
    import onnxslim

    model = onnx.load(str(path))
    before = len(model.graph.node)
    slim = onnxslim.slim(model)
    onnx.save(slim, str(path))
    return {"nodes_before": before, "nodes_after": len(slim.graph.node)}


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, fp32 input/output (so apps feed the same tensors)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def fix_qdq(path: Path, *, runtime: str) -> dict:
    """Apply the Q/DQ rewrites of :mod:`edgeseg.exporters.qdq` that suit ``runtime``.

    Weight folding is standard Q/DQ for everyone. The uint8 and scalar rewrites are for ONNX
    Runtime only: TensorRT takes signed int8 alone, and OpenVINO matches NNCF's own patterns.
    """
    import onnx

    from edgeseg.exporters.qdq import activations_to_uint8, fold_weight_quantizers, scalars_into_quantizers

    model = onnx.load(str(path))
    facts = {"weights_folded": fold_weight_quantizers(model)}
    if runtime == "onnxruntime":
        facts["activation_zero_points_to_uint8"] = activations_to_uint8(model)
        facts.update(scalars_into_quantizers(model))
    onnx.save(model, str(path))
    return facts


def ort_static_int8(fp32: Path, dst: Path, calibration: list[np.ndarray], *, seven_bit: bool) -> None:
    """ONNX Runtime static PTQ: QDQ, per-channel int8 weights, uint8 activations (ORT's x86 fast path);
    ``seven_bit``: ``reduce_range`` weights, for a target whose int8 kernels saturate."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(calibration)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared = dst.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared))  # shape inference + BN folding
    quantize_static(
        str(prepared),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        reduce_range=seven_bit,
    )
    prepared.unlink()


def check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise or_storage(exc, ExportError(f"{path}: onnx.checker rejected the exported model ({exc})")) from None


def embed_metadata(path: Path, metadata: dict) -> None:
    """Store the bundle metadata in the model itself: ``metadata_props["edgeseg"]`` (JSON)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
    model.producer_name = "edgeseg"
    onnx.save(model, str(path))


def to_ort_format(onnx_path: Path, out_dir: Path) -> Path:
    """ONNX Runtime Mobile: the ``.ort`` flatbuffer plus the reduced-operator config.

    ``required_operators_and_types.config`` is what a custom minimal ORT build for Android/iOS
    is compiled against (tools/ci_build/build.py --include_ops_by_config).
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    work = out_dir / ".ort-conversion"
    work.mkdir()
    staged = work / onnx_path.name
    staged.write_bytes(onnx_path.read_bytes())
    try:
        with contextlib.redirect_stdout(io.StringIO()) as chatter:  # the converter prints progress
            convert_onnx_models_to_ort(
                staged, output_dir=work, optimization_styles=[OptimizationStyle.Fixed], enable_type_reduction=True
            )
        log.debug(chatter.getvalue())
    except Exception as exc:
        failed = ExportError(f"{onnx_path}: conversion to ORT format failed ({type(exc).__name__}: {exc})")
        raise or_storage(exc, failed, out_dir / onnx_path.name) from None
    produced = list(work.glob("*.ort"))
    configs = list(work.glob("*.config"))
    if len(produced) != 1:
        raise ExportError(f"{onnx_path}: conversion to ORT format produced {len(produced)} .ort files")
    target = out_dir / "model.ort"
    produced[0].replace(target)
    for config in configs:
        config.replace(out_dir / "required_operators_and_types.config")
    shutil.rmtree(work)
    return target


# --------------------------------------------------------------------------------------------
# The builder of the onnx format (and the ONNX graphs other formats start from)


def build(job: ExportJob, out: Path) -> Built:
    """``model.onnx``: fp32, fp16 (converted after export) or int8 Q/DQ."""

    path = out / FORMATS["onnx"].file
    precision = job.target.precision
    if precision == "fp32":
        facts = job.onnx_fp32(path)
        return Built(path.name, job.fp32, "fp32", facts)
    if precision == "fp16":
        fp32 = out / ".fp32.onnx"
        facts = job.onnx_fp32(fp32)
        to_fp16(fp32, path)
        fp32.unlink()
        simplify(path)  # also restores topological order after the Cast insertions
        return Built(path.name, job.fp32, "fp32", facts)
    return build_int8(job, path, for_tensorrt=False)


def build_int8(job: ExportJob, path: Path, *, for_tensorrt: bool) -> Built:
    """Q/DQ int8 ONNX: the compression stage's quantizers, else PTQ here (NNCF or ORT static),
    with the weights the deployment target needs (``edgeseg.targets``)."""

    if job.quantized:
        return build_from_quantized(job, path, for_tensorrt=for_tensorrt)
    seven_bit = job.deployment.seven_bit_weights
    method = "nncf" if for_tensorrt else job.spec.calibration.method
    if method == "ort_static":
        fp32 = path.with_name(".fp32.onnx")
        job.onnx_fp32(fp32)
        ort_static_int8(fp32, path, job.calibration_inputs(), seven_bit=seven_bit)
        fp32.unlink()
        weights = "7-bit" if seven_bit else "8-bit"
        quantization = f"onnxruntime static PTQ (QDQ, u8 activations, per-channel {weights} s8 weights)"
        return Built(path.name, job.fp32, "fp32", {"quantization": quantization})
    from edgeseg.compress.quantize import quantize_ptq

    quantized = quantize_ptq(
        job.loaded.model, job.calibration_batches(), signed_activations=for_tensorrt, seven_bit=seven_bit
    )
    reference, facts = job.qdq_onnx(quantized, path, "tensorrt" if for_tensorrt else "onnxruntime")
    kind = "signed symmetric (TensorRT)" if for_tensorrt else "symmetric, u8 activations"
    kind += ", 7-bit weights" if seven_bit else ""
    return Built(
        path.name, reference, "nncf fake-quantized", {"quantization": f"nncf PTQ, Q/DQ {kind}", "qdq_rewrites": facts}
    )


def build_from_quantized(job: ExportJob, path: Path, *, for_tensorrt: bool, runtime: str = "onnxruntime") -> Built:
    """Q/DQ ONNX of a checkpoint the compression stage quantized (QAT or PTQ): no new ranges."""
    from edgeseg.models.replay import int8_facts

    compression = int8_facts(job.loaded.raw["compression"])
    check_quantized_for(job, compression["target"])
    reference, facts = job.qdq_onnx(job.loaded.model, path, "tensorrt" if for_tensorrt else runtime)
    kept = [k["group"] for k in compression.get("fallback", [])]
    return Built(
        path.name,
        reference,
        "nncf fake-quantized",
        {"quantization": "from the compression stage (nncf)", "kept_in_float": kept, "qdq_rewrites": facts},
    )


def check_quantized_for(job: ExportJob, quantized_for: str) -> None:
    """A checkpoint quantized for one target exports only to targets its int8 suits.

    Checkpoints from before targets were named by instruction set say ``cpu`` (8-bit weights)
    or ``tensorrt`` (now ``cuda``).
    """
    from edgeseg.targets import TARGETS

    deployed = job.deployment
    quantized_for = {"tensorrt": "cuda"}.get(quantized_for, quantized_for)
    if deployed.name == "cuda" and quantized_for != "cuda":
        raise ExportError(
            f"{job.target.name}: this checkpoint was quantized for target '{quantized_for}', whose unsigned "
            "activations TensorRT cannot take; quantize with compress.steps[-1].target: cuda"
        )
    seven_bit = quantized_for in TARGETS and TARGETS[quantized_for].seven_bit_weights
    if deployed.seven_bit_weights and not seven_bit:
        raise ExportError(
            f"{job.target.name}: this checkpoint was quantized for target '{quantized_for}' (8-bit weights), "
            f"whose int8 saturates on x86 CPUs without VNNI, and it is exported for target '{deployed.name}'; "
            f"quantize with compress.steps[-1].target: {deployed.name}, or set the export's target to x86-vnni or arm64"
        )
