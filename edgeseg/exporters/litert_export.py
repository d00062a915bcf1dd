"""LiteRT (``.tflite``): converted by ``litert_torch``, the file Android apps load with the LiteRT
``Interpreter`` (XNNPACK on the CPU, or the GPU delegate). fp32, or int8 by the pt2e flow with
LiteRT's own quantizer. With ``export.litert.nhwc`` the graph takes N×H×W×3, as camera frames
and bitmaps come. The edgeseg metadata is embedded in the flatbuffer's ``metadata`` table
(name ``edgeseg``, UTF-8 JSON), where LiteRT's metadata readers look.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgeseg.bundle import METADATA_KEY
from edgeseg.exporters import pt2e
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, static_metadata
from edgeseg.formats import FORMATS


def litert_quantizer():
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def convert(job: ExportJob, module: torch.nn.Module, path: Path, quantizer=None) -> None:
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    example = job.example()
    if job.channels_last:
        module = litert_torch.to_channel_last_io(module, args=[0])
        example = example.permute(0, 2, 3, 1).contiguous()
    config = QuantConfig(pt2e_quantizer=quantizer) if quantizer is not None else None
    litert_torch.convert(module, (example,), quant_config=config).export(str(path))


def input_quantization(path: Path) -> dict | None:
    """Scale and zero point of an int8 input tensor (an app quantizes its floats with them)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_input_details()[0]
    if details["dtype"] != np.int8:
        return None
    scale, zero_point = details["quantization"]
    return {
        "dtype": "int8",
        "scale": float(scale),
        "zero_point": int(zero_point),
        "formula": "clip(round(x / scale) + zero_point, -128, 127), x as the float input above",
    }


def embed_metadata(path: Path, metadata: dict) -> None:
    """Add (or replace) the ``edgeseg`` entry of the model's metadata table."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def read_metadata(path: Path) -> dict:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    for entry in model.metadata or []:
        if entry.name.decode() == METADATA_KEY:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    raise KeyError(f"{path}: no {METADATA_KEY} metadata")


def build(job: ExportJob, out: Path) -> Built:
    """``model.tflite``: fp32 or pt2e int8, with the metadata embedded."""
    path = out / FORMATS["litert"].file
    facts: dict = {"layout": "NHWC" if job.channels_last else "NCHW"}
    reference, kind, quantizer = job.fp32, "fp32", None
    if job.target.precision == "int8":
        quantizer = litert_quantizer()  # the converter reads the quantizer's settings
        reference, quantized = pt2e.quantize(job, litert_quantizer, fold_quantize=False)
        kind = "pt2e quantized (LiteRT PT2EQuantizer)"
        facts.update(pt2e.facts(job, "LiteRT PT2EQuantizer", quantized))
    with torch.no_grad():
        convert(job, reference, path, quantizer)
    io = {}
    quantized_input = input_quantization(path)
    if quantized_input:
        io["input"] = {"quantization": quantized_input}
    meta = static_metadata(job, path.name, io)
    embed_metadata(path, meta)
    return Built(path.name, reference, kind, facts, io)
