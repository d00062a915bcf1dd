"""LiteRT sessions (``.tflite``) through ``ai_edge_litert``'s Interpreter: torch-free, with the
XNNPACK delegate LiteRT applies by default on the CPU.

An int8 model whose input tensor is int8 takes floats here: the session quantizes them with the
tensor's own scale and zero point, as an app does (model.json ``input.quantization``), and the
time it takes is part of the measured latency.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require


class LiteRTSession:
    def __init__(
        self, path: Path, *, device: str = "cpu", threads: int | None = None, precision_hint: str | None = None
    ):
        if device != "cpu":
            raise DependencyError(f"litert: device '{device}' is not supported here (the interpreter runs on cpu)")
        interpreter = require("ai_edge_litert.interpreter")
        self._interpreter = interpreter.Interpreter(model_path=str(path), num_threads=threads or os.cpu_count())
        self._interpreter.allocate_tensors()
        first, out = self._interpreter.get_input_details()[0], self._interpreter.get_output_details()[0]
        self._input, self._output = first["index"], out["index"]
        self._quantization = first["quantization"] if first["dtype"] == np.int8 else None
        dtype = "float32" if self._quantization else np.dtype(first["dtype"]).name
        self.input = InputSpec(first["name"], tuple(int(d) for d in first["shape"]), dtype)
        ops = [op["op_name"] for op in self._interpreter._get_ops_details()]
        self.info = SessionInfo(
            runtime="litert",
            device="cpu",
            threads=threads,
            precision="int8" if self._quantization else "as stored",
            details={
                "ai_edge_litert": _version(),
                "xnnpack_partitions": ops.count("DELEGATE"),
                "ops_outside_delegate": len(ops) - ops.count("DELEGATE"),
            },
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._quantization:
            scale, zero_point = self._quantization
            batch = np.clip(np.round(batch / scale) + zero_point, -128, 127).astype(np.int8)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "unknown"
