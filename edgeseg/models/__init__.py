"""Segmentation models: a head (``HEADS``) on a backbone (``BACKBONES``), returning N×C×H×W logits.

This face re-exports the package's entry points; the logic lives in ``builders``.
"""

from __future__ import annotations

from edgeseg.models.builders import (
    BACKBONES,
    HEADS,
    DeepLabV3Model,
    DeepLabV3PlusModel,
    LRASPPModel,
    Preprocessing,
    build_model,
    model_facts,
    output_stride,
    preprocessing,
)

__all__ = [
    "BACKBONES",
    "DeepLabV3Model",
    "DeepLabV3PlusModel",
    "HEADS",
    "LRASPPModel",
    "Preprocessing",
    "build_model",
    "model_facts",
    "output_stride",
    "preprocessing",
]
