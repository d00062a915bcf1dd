"""Inference sessions: one small interface over PyTorch, ONNX Runtime, OpenVINO and TensorRT.

Everything but the ``torch`` runtime imports only numpy at module level, so a device with just
onnxruntime / openvino / tensorrt installed can load and run artifacts without the training
stack. A session takes one batch laid out as the artifact's ``model.json`` says (normalised
float32 NCHW, or uint8 NCHW when preprocessing is folded in) and returns the first output.

Bench times ``session.infer(batch)`` where a session has one: the call up to the output being
ready in the runtime's own buffer, where an app reads it, without the copy ``run`` hands over
(OpenVINO; ONNX Runtime's ``run`` gives its output without one, measured no faster with I/O binding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeseg.errors import DependencyError, EdgesegError
from edgeseg.formats import EXECUTION_PRECISIONS, RUNTIME_NAMES, RUNTIMES, TOOLS, entry_point, runtimes_for_suffix
from edgeseg.registry import did_you_mean, lookup


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
        runtime: one of ``edgeseg.formats.RUNTIMES``; by default the first that opens the file.
        device: ``cpu``, ``cuda`` / ``gpu``, ``npu`` (what the runtime supports).
        threads: intra-op threads; None leaves the runtime's default.
        precision_hint: OpenVINO's inference precision (``f32`` when None: "fp32" means fp32;
            ``bf16``, ``f16``, or ``default`` for the plugin's own choice). Ignored elsewhere.

    Raises:
        DependencyError: the runtime (or its device) is not installed here.
        EdgesegError: an unknown runtime, or one that cannot open this file type.
    """
    path, name = resolve_runtime(artifact, runtime, precision_hint)
    session = entry_point(RUNTIMES[name].session)
    try:
        return session(path, device=device, threads=threads, precision_hint=precision_hint)
    except DependencyError as exc:  # which bundle needed it: a bench of ten names the one
        raise DependencyError(f"{path}: {exc}") from None


def resolve_runtime(artifact: Path | str, runtime: str | None, precision_hint: str | None = None) -> tuple[Path, str]:
    """The model file and the runtime that will open it, checked without importing the runtime:
    what ``open_session`` refuses, refused before anything waits or runs (``edgeseg bench``
    checks every artifact before it takes the CPU).

    Raises:
        DependencyError: the runtime cannot be asked for that precision (exit 7).
        EdgesegError: no such file, an unknown file type or runtime, or a runtime that cannot open it.
    """
    from edgeseg.bundle import artifact_path

    path = artifact_path(artifact)
    if not path.exists():
        raise EdgesegError(f"{path}: no such artifact")
    suffix = path.suffix.lower()
    can_open = runtimes_for_suffix()
    if suffix not in can_open:
        raise EdgesegError(f"{path}: unknown artifact type '{suffix}' (known: {', '.join(can_open)})")
    name = runtime or can_open[suffix][0]
    if name not in RUNTIMES:
        raise EdgesegError(
            f"unknown runtime '{name}'{did_you_mean(name, RUNTIME_NAMES)}; known: {', '.join(RUNTIME_NAMES)}"
        )
    if name not in can_open[suffix]:
        raise EdgesegError(f"{path}: runtime '{name}' cannot open {suffix} files (use {', '.join(can_open[suffix])})")
    _check_precision(path, name, precision_hint)
    return path, name


def _check_precision(path: Path, runtime: str, precision: str | None) -> None:
    """A precision the runtime cannot be asked for is an error naming those that can (exit 7);
    an unknown one is the registry's error (exit 2, with the known names)."""
    if precision is None or precision in RUNTIMES[runtime].precisions:
        return
    lookup(dict.fromkeys(EXECUTION_PRECISIONS), precision, "precision")
    able = [r.name for r in RUNTIMES.values() if precision in r.precisions]
    raise DependencyError(
        f"{path}: {runtime} runs an artifact at the precision its file holds (it takes no precision); "
        f"{precision} execution: {', '.join(able)}"
    )


def require(module: str, install: str | None = None):
    """Import an optional runtime or tool, or fail with the command that installs it
    (``install`` defaults to the one ``edgeseg.formats.TOOLS`` gives)."""
    install = install or TOOLS[module][1]
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(f"{module} is not installed ({exc}); install it with: {install}") from None


__all__ = ["InputSpec", "Session", "SessionInfo", "open_session", "require", "resolve_runtime"]
