"""ExecuTorch (``.pte``): ``torch.export`` lowered to XNNPACK, the CPU backend iOS and Android
apps load through ExecuTorch's ``Module``; fp32, or int8 by the pt2e flow with XNNPACK's
quantizer. The edgeseg metadata is a constant method of the program (``edgeseg_metadata``:
the model.json facts as UTF-8 bytes), so an app can read classes and preprocessing from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from edgeseg.exporters import pt2e
from edgeseg.exporters.built import Built
from edgeseg.exporters.job import ExportJob, static_metadata
from edgeseg.formats import FORMATS

METADATA_METHOD = "edgeseg_metadata"


def xnnpack_quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def lower(module: torch.nn.Module, example: torch.Tensor, metadata: dict):
    """The XNNPACK-delegated edge program of ``module``, with the metadata method."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    blob = list(json.dumps(metadata, sort_keys=True).encode())
    return to_edge_transform_and_lower(
        torch.export.export(module, (example,)),
        partitioner=[XnnpackPartitioner()],
        constant_methods={METADATA_METHOD: blob},
    )


def delegation(edge) -> dict:
    """How much of the graph XNNPACK runs (the rest falls back to ExecuTorch's portable kernels)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    return {
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": info.num_delegated_nodes,
        "non_delegated_nodes": info.num_non_delegated_nodes,
    }


def build(job: ExportJob, out: Path) -> Built:
    """``model.pte``: fp32 or pt2e int8, lowered to XNNPACK."""
    path = out / FORMATS["executorch"].file
    facts: dict = {"backend": "xnnpack"}
    reference, kind = job.fp32, "fp32"
    if job.target.precision == "int8":
        reference, quantized = pt2e.quantize(job, xnnpack_quantizer)
        kind = "pt2e quantized (XNNPACKQuantizer)"
        facts.update(pt2e.facts(job, "XNNPACKQuantizer", quantized))
    with torch.no_grad():
        edge = lower(reference, job.example(), static_metadata(job, path.name))
    facts["delegation"] = delegation(edge)
    path.write_bytes(edge.to_executorch().buffer)
    return Built(path.name, reference, kind, facts)


def read_metadata(path: Path) -> dict:
    """The metadata a ``.pte`` carries (what an app would read through ``Module.execute``)."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path)
    blob = program.load_method(METADATA_METHOD).execute([])
    return json.loads(bytes(int(b) for b in blob).decode())
