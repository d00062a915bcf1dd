"""Core ML sessions (``.mlpackage``) through ``coremltools``: Apple's runtime, which runs models
on macOS only. Elsewhere opening one fails with DependencyError, and an export is checked at
the graph level instead (``edgeseg.exporters.coreml_export.verify``).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require

# Core ML compute units per edgeseg device name.
COMPUTE_UNITS = {"cpu": "CPU_ONLY", "gpu": "CPU_AND_GPU", "npu": "CPU_AND_NE", "all": "ALL"}


class CoreMLSession:
    def __init__(
        self, path: Path, *, device: str = "cpu", threads: int | None = None, precision_hint: str | None = None
    ):
        if platform.system() != "Darwin":
            raise DependencyError(f"coreml: Core ML runs models on macOS only (this is {platform.system()})")
        if device not in COMPUTE_UNITS:
            raise DependencyError(f"coreml: unknown device '{device}' (known: {', '.join(COMPUTE_UNITS)})")
        ct = require("coremltools")
        self._model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[device]))
        spec = self._model.get_spec().description
        first, self._output = spec.input[0], spec.output[0].name
        self._image = first.type.WhichOneof("Type") == "imageType"
        if self._image:
            shape, dtype = (1, 3, first.type.imageType.height, first.type.imageType.width), "uint8"
        else:
            shape, dtype = tuple(first.type.multiArrayType.shape), "float32"
        self.input = InputSpec(first.name, shape, dtype)
        self.info = SessionInfo("coreml", device, threads, "fp16", {"coremltools": ct.__version__})

    def run(self, batch: np.ndarray) -> np.ndarray:
        from PIL import Image

        outputs = []
        for item in batch:  # Core ML predicts one image at a time here
            feed = Image.fromarray(item.transpose(1, 2, 0).astype(np.uint8)) if self._image else item[None]
            outputs.append(np.asarray(self._model.predict({self.input.name: feed})[self._output]))
        return np.concatenate(outputs)
