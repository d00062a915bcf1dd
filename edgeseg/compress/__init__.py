"""Compression: the fine-tuned checkpoint in, a compressed checkpoint and a report out.

This face re-exports the package's entry points; the logic lives in ``steps``.
"""

from __future__ import annotations

from edgeseg.compress.steps import STEPS, CompressJob, compress_checkpoint

__all__ = ["CompressJob", "STEPS", "compress_checkpoint"]
