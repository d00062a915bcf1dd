"""ExecuTorch sessions (``.pte``) through ``executorch.runtime``, the Python binding of the
runtime apps embed. It needs torch installed (its tensors are torch's); edgeseg's own code here
stays numpy in, numpy out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require

# ExecuTorch ScalarType codes -> numpy dtype names (the ones a segmentation graph uses).
_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32"}


class ExecuTorchSession:
    def __init__(
        self, path: Path, *, device: str = "cpu", threads: int | None = None, precision_hint: str | None = None
    ):
        if device != "cpu":
            raise DependencyError(f"executorch: device '{device}' is not supported here (XNNPACK runs on cpu)")
        runtime_module = require("executorch.runtime")
        import torch

        if threads:
            torch.set_num_threads(threads)  # XNNPACK's thread pool follows the process's CPU count
        self._torch = torch
        program = runtime_module.Runtime.get().load_program(Path(path))
        self._method = program.load_method("forward")
        meta = program.metadata("forward").input_tensor_meta(0)
        self.input = InputSpec("image", tuple(meta.sizes()), _DTYPES.get(int(meta.dtype()), str(meta.dtype())))
        self.info = SessionInfo(
            runtime="executorch",
            device="cpu",
            threads=threads,
            precision="as stored",
            details={"executorch": _version(), "backend": "xnnpack"},
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._method.execute([self._torch.from_numpy(np.ascontiguousarray(batch))])[0].numpy()


def _version() -> str:
    from importlib import metadata

    return metadata.version("executorch")
