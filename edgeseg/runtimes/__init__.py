"""Inference sessions: one small interface over PyTorch, ONNX Runtime, OpenVINO and TensorRT.

Everything but the ``torch`` runtime imports only numpy at module level, so a device with just
onnxruntime / openvino / tensorrt installed can load and run artifacts without the training
stack. A session takes one batch laid out as the artifact's ``model.json`` says (normalised
float32 NCHW, or uint8 NCHW when preprocessing is folded in) and returns the first output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeseg.errors import DependencyError, EdgesegError
from edgeseg.registry import did_you_mean


@dataclass(frozen=True)
class InputSpec:
    """The model input: name, shape (None where dynamic) and numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class SessionInfo:
    """What a measurement must record about the session that produced it."""

    runtime: str
    device: str
    threads: int | None
    precision: str  # what the runtime actually computes in (e.g. OpenVINO's effective hint)
    details: dict = field(default_factory=dict)  # providers, plugin properties, engine facts


class Session(Protocol):
    input: InputSpec
    info: SessionInfo

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def _onnxruntime(path: Path, **kw) -> Session:
    from edgeseg.runtimes.onnxruntime_rt import OnnxRuntimeSession

    return OnnxRuntimeSession(path, **kw)


def _openvino(path: Path, **kw) -> Session:
    from edgeseg.runtimes.openvino_rt import OpenVINOSession

    return OpenVINOSession(path, **kw)


def _tensorrt(path: Path, **kw) -> Session:
    from edgeseg.runtimes.tensorrt_rt import TensorRTSession

    return TensorRTSession(path, **kw)


def _torch(path: Path, **kw) -> Session:
    from edgeseg.runtimes.torch_rt import TorchSession

    return TorchSession(path, **kw)


RUNTIMES: dict[str, Callable[..., Session]] = {
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "tensorrt": _tensorrt,
    "torch": _torch,
}

# Which runtime opens a file by default, and which others can (OpenVINO reads ONNX too).
DEFAULT_RUNTIME = {".onnx": "onnxruntime", ".ort": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt", ".pt": "torch"}
CAN_OPEN = {
    ".onnx": ("onnxruntime", "openvino", "tensorrt"),
    ".ort": ("onnxruntime",),
    ".xml": ("openvino",),
    ".engine": ("tensorrt",),
    ".pt": ("torch",),
}


def open_session(
    artifact: Path | str,
    runtime: str | None = None,
    *,
    device: str = "cpu",
    threads: int | None = None,
    precision_hint: str | None = None,
) -> Session:
    """Load ``artifact`` (a model file, or a bundle directory) into a ready-to-run session.

    Args:
        artifact: ``model.onnx`` / ``.ort`` / ``.xml`` / ``.engine`` / an edgeseg ``.pt``
            checkpoint, or a bundle directory holding one with its ``model.json``.
        runtime: one of ``RUNTIMES``; by default the natural runtime for the file type.
        device: ``cpu``, ``cuda`` / ``gpu``, ``npu`` (what the runtime supports).
        threads: intra-op threads; None leaves the runtime's default.
        precision_hint: OpenVINO's inference precision (``f32`` when None: "fp32" means fp32;
            ``bf16``, ``f16``, or ``default`` for the plugin's own choice). Ignored elsewhere.

    Raises:
        DependencyError: the runtime (or its device) is not installed here.
        EdgesegError: an unknown runtime, or one that cannot open this file type.
    """
    from edgeseg.bundle import artifact_path

    path = artifact_path(artifact)
    if not path.exists():
        raise EdgesegError(f"{path}: no such artifact")
    suffix = path.suffix.lower()
    if suffix not in DEFAULT_RUNTIME:
        raise EdgesegError(f"{path}: unknown artifact type '{suffix}' (known: {', '.join(DEFAULT_RUNTIME)})")
    name = runtime or DEFAULT_RUNTIME[suffix]
    if name not in RUNTIMES:
        raise EdgesegError(f"unknown runtime '{name}'{did_you_mean(name, list(RUNTIMES))}; known: {', '.join(RUNTIMES)}")
    if name not in CAN_OPEN[suffix]:
        raise EdgesegError(f"{path}: runtime '{name}' cannot open {suffix} files (use {', '.join(CAN_OPEN[suffix])})")
    return RUNTIMES[name](path, device=device, threads=threads, precision_hint=precision_hint)


def require(module: str, install: str):
    """Import an optional runtime or fail with the command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(f"{module} is not installed ({exc}); install it with: {install}") from None


__all__ = ["RUNTIMES", "InputSpec", "Session", "SessionInfo", "open_session", "require"]
