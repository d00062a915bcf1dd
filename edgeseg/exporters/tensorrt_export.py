"""TensorRT engines, built with the tensorrt Python API on the machine that will run them.

fp16, or INT8 by explicit quantization: the engine is built from a Q/DQ ONNX whose quantizers
are all signed and symmetric (TensorRT's only INT8 form; implicit calibrators are deprecated in
TensorRT 10). Dynamic shapes get one optimisation profile spanning min..max with the export
size as the optimum.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgeseg.errors import ExportError
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob
from edgeseg.exporters.onnx_export import build_int8
from edgeseg.formats import FORMATS
from edgeseg.recipe import ExportSpec
from edgeseg.runtimes.session import require
from edgeseg.runtimes.tensorrt_rt import gpu_facts, write_engine_file

log = logging.getLogger(__name__)


def build_engine(
    onnx_path: Path, engine_path: Path, *, precision: str, spec: ExportSpec, input_size: tuple[int, int]
) -> dict:
    """Build and write ``engine_path`` (header + serialized engine). Returns the build facts."""
    trt = require("tensorrt")
    facts = gpu_facts()  # DependencyError without a GPU, before any work
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.tensorrt.workspace_gb * (1 << 30)))
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # with Q/DQ in the graph: explicit quantization
    h, w = input_size
    name = network.get_input(0).name
    if spec.dynamic_batch or spec.dynamic_hw:
        min_hw = spec.tensorrt.min_hw or ((h // 2, w // 2) if spec.dynamic_hw else (h, w))
        max_hw = spec.tensorrt.max_hw or ((h * 2, w * 2) if spec.dynamic_hw else (h, w))
        max_batch = spec.tensorrt.max_batch if spec.dynamic_batch else 1
        profile = builder.create_optimization_profile()
        profile.set_shape(name, (1, 3, *min_hw), (1, 3, h, w), (max_batch, 3, *max_hw))
        config.add_optimization_profile(profile)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    header = {
        "tensorrt": trt.__version__,
        **facts,
        "precision": precision,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    write_engine_file(engine_path, header, bytes(serialized))
    return header


def build(job: ExportJob, out: Path) -> Built:
    """``model.engine``: fp16, or int8 from a signed symmetric Q/DQ graph."""
    gpu_facts()  # fail before exporting anything on a machine without a GPU
    engine = out / FORMATS["tensorrt"].file
    source = out / ".source.onnx"
    if job.target.precision == "int8":
        built = build_int8(job, source, for_tensorrt=True)
        reference, kind, facts = built.reference, built.reference_kind, built.facts
    else:  # fp16; the recipe schema refuses fp32 engines
        reference, kind, facts = job.fp32, "fp32", job.onnx_fp32(source)
    facts["engine"] = build_engine(
        source, engine, precision=job.target.precision, spec=job.spec, input_size=job.input_size
    )
    source.unlink()
    return Built(engine.name, reference, kind, facts)
