"""Inference sessions: one small interface over PyTorch, ONNX Runtime, OpenVINO and TensorRT.

This face re-exports the package's entry points; the logic lives in ``session``.
"""

from __future__ import annotations

from edgeseg.runtimes.session import InputSpec, Session, SessionInfo, open_session, require

__all__ = ["InputSpec", "Session", "SessionInfo", "open_session", "require"]
