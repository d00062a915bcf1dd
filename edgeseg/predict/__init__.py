"""Colour overlays a person can look at: the image with each class painted in its colour.

This face re-exports the package's entry points; the logic lives in ``images``.
"""

from __future__ import annotations

from edgeseg.data.colours import colorize, overlay
from edgeseg.predict.images import predict_files

__all__ = ["colorize", "overlay", "predict_files"]
