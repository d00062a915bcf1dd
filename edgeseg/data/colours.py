"""Class colours painted over images: what ``predict`` writes and the data contact sheet shows."""

from __future__ import annotations

import numpy as np


def colorize(classes: np.ndarray, palette) -> np.ndarray:
    """HxW class ids to HxWx3 uint8 colours (ids beyond the palette, e.g. ignore, are black)."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[classes]


def overlay(image: np.ndarray, classes: np.ndarray, palette, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours over an HxWx3 uint8 image."""
    colours = colorize(classes, palette).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    from edgeseg.data.torchvision_sets import voc_palette

    base = voc_palette()
    return tuple(base[(i % (len(base) - 1)) + 1] for i in range(n))
