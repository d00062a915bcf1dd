"""OpenVINO IR: converted from the verified ONNX graph; fp32, fp16-compressed, or INT8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeseg.bundle import METADATA_KEY
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, static_metadata
from edgeseg.exporters.onnx_export import build_from_quantized
from edgeseg.formats import FORMATS
from edgeseg.runtimes.session import require


def onnx_to_ir(onnx_path: Path, xml_path: Path, *, compress_to_fp16: bool, metadata: dict) -> None:
    ov = require("openvino")
    model = ov.convert_model(str(onnx_path))
    _set_metadata(model, metadata)
    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)


def quantize_ir(
    onnx_path: Path, xml_path: Path, calibration: list[np.ndarray], *, metadata: dict, seven_bit: bool
) -> None:
    """``nncf.quantize`` PTQ on the OpenVINO model (OpenVINO's own graph, its own patterns);
    ``seven_bit``: NNCF's ``OverflowFix`` on every weight, for a target whose int8 saturates."""
    ov = require("openvino")
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    from edgeseg.console import route_nncf_output

    route_nncf_output()
    model = ov.convert_model(str(onnx_path))
    fix = OverflowFix.ENABLE if seven_bit else OverflowFix.DISABLE  # not trained further: the range is final
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(calibration),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix),
    )
    _set_metadata(quantized, metadata)
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)


def _set_metadata(model, metadata: dict) -> None:
    """``rt_info["edgeseg"]``: the same JSON the ONNX artifact carries, plus flat keys for C++."""
    model.set_rt_info(json.dumps(metadata, sort_keys=True), [METADATA_KEY, "json"])
    model.set_rt_info(",".join(metadata["classes"]["names"]), [METADATA_KEY, "class_names"])
    model.set_rt_info(metadata["output"]["kind"], [METADATA_KEY, "output_kind"])


def build(job: ExportJob, out: Path) -> Built:
    """``model.xml`` + ``.bin``: converted from the ONNX graph; int8 by NNCF on the OpenVINO model."""
    xml = out / FORMATS["openvino"].file
    meta = static_metadata(job, xml.name)
    if job.quantized:  # the compression stage's Q/DQ graph; OpenVINO reads it as FakeQuantize
        source = out / ".int8.onnx"
        built = build_from_quantized(job, source, for_tensorrt=False, runtime="openvino")
        onnx_to_ir(source, xml, compress_to_fp16=False, metadata=meta)
        source.unlink()
        return Built(xml.name, built.reference, built.reference_kind, built.facts)
    fp32 = out / ".fp32.onnx"
    facts = job.onnx_fp32(fp32)
    if job.target.precision == "int8":
        seven_bit = job.deployment.seven_bit_weights
        quantize_ir(fp32, xml, job.calibration_inputs(), metadata=meta, seven_bit=seven_bit)
        facts["quantization"] = "nncf PTQ on the OpenVINO model" + (", 7-bit weights" if seven_bit else "")
    else:
        onnx_to_ir(fp32, xml, compress_to_fp16=job.target.precision == "fp16", metadata=meta)
    fp32.unlink()
    return Built(xml.name, job.fp32, "fp32", facts)
