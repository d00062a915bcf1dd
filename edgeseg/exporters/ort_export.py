"""ONNX Runtime Mobile (``.ort``): the verified ONNX graph in ORT's flatbuffer format, with the
operator config a reduced ORT build for an app needs."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeseg.exporters import onnx_export
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, static_metadata
from edgeseg.formats import FORMATS


def build(job: ExportJob, out: Path) -> Built:
    """``model.ort``: the ONNX graph (any precision) converted for ONNX Runtime Mobile."""
    staging = out / ".onnx"
    staging.mkdir()
    built = onnx_export.build(job, staging)
    onnx_export.check(staging / built.file)
    onnx_export.embed_metadata(staging / built.file, static_metadata(job, FORMATS["ort"].file))
    onnx_export.to_ort_format(staging / built.file, out)
    shutil.rmtree(staging)
    return Built(
        FORMATS["ort"].file,
        built.reference,
        built.reference_kind,
        {**built.facts, "ort_config": "required_operators_and_types.config"},
    )
