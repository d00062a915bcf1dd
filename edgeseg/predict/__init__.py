"""Colour overlays a person can look at: images, videos and cameras through a bundle (the
deployment kit's own path, torch-free) or a checkpoint, each stage of a frame timed.

This face re-exports the package's entry points; the logic lives in ``images``, ``video`` and
``segmenters``, and ``kit`` is the deployment kit itself (``export/python/segment.py``).
"""

from __future__ import annotations

from edgeseg.data.colours import colorize, overlay
from edgeseg.predict.images import predict_files
from edgeseg.predict.segmenters import open_segmenter
from edgeseg.predict.video import predict_video

__all__ = ["colorize", "open_segmenter", "overlay", "predict_files", "predict_video"]
