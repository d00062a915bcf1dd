"""ONNX Runtime sessions (``.onnx`` and ONNX Runtime Mobile ``.ort``): CPU, CUDA, TensorRT EPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require

# Device -> execution providers, most preferred first; CPU always last as the fallback.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int64)": "int64"}


class OnnxRuntimeSession:
    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision_hint: str | None = None,
        profile_prefix: str | None = None,
    ):
        ort = require("onnxruntime")
        if device not in PROVIDERS:
            raise DependencyError(f"onnxruntime: unknown device '{device}' (known: {', '.join(PROVIDERS)})")
        wanted = PROVIDERS[device]
        available = ort.get_available_providers()
        if wanted[0] not in available:
            raise DependencyError(
                f"onnxruntime: {wanted[0]} is not available here (available: {', '.join(available)}); "
                "install onnxruntime-gpu on a machine with an NVIDIA GPU"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if profile_prefix:  # edgeseg.bench.profile: a per-node trace, in a session of its own
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        self._session = ort.InferenceSession(str(path), options, providers=[p for p in wanted if p in available])
        first = self._session.get_inputs()[0]
        self.input = InputSpec(
            first.name,
            tuple(d if isinstance(d, int) else None for d in first.shape),
            _DTYPES.get(first.type, first.type),
        )
        self._output = self._session.get_outputs()[0].name
        self.info = SessionInfo(
            runtime="onnxruntime",
            device=device,
            threads=threads,
            precision="as stored",  # ORT computes in the graph's own types
            details={"providers": self._session.get_providers(), "onnxruntime": ort.__version__},
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self.input.name: batch})[0]

    def end_profiling(self) -> str:
        """The trace file of a session opened with ``profile_prefix`` (Chrome trace JSON)."""
        return self._session.end_profiling()
