"""A contact sheet: a few images of each split with their masks painted over them, and a legend,
so a shifted class id or a lost ignore value shows at a glance before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TILE = 160  # the longer side of each tile, px


def _tile(image: np.ndarray, mask: np.ndarray, palette, caption: str):
    from PIL import Image, ImageDraw

    from edgeseg.data.colours import overlay
    from edgeseg.data.samples import IGNORE

    painted = overlay(image, mask, palette, alpha=0.55)
    painted[mask == IGNORE] = image[mask == IGNORE] // 3  # ignored pixels: dimmed, not coloured
    tile = Image.fromarray(painted)
    scale = TILE / max(tile.size)  # small images grow (nearest: class edges stay sharp), large ones shrink
    size = (round(tile.width * scale), round(tile.height * scale))
    tile = tile.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    framed = Image.new("RGB", (TILE, tile.height + 16), "white")
    framed.paste(tile, (0, 0))
    ImageDraw.Draw(framed).text((2, tile.height + 2), caption[:26], fill="black")
    return framed


def _legend(class_names, palette, width: int):
    from PIL import Image, ImageDraw

    entries = [(f"{i} {name}", tuple(int(c) for c in palette[i])) for i, name in enumerate(class_names)]
    entries.append(("ignored (dimmed)", (40, 40, 40)))
    rows = (len(entries) + 3) // 4
    legend = Image.new("RGB", (width, 16 * rows + 4), "white")
    draw = ImageDraw.Draw(legend)
    column = width // 4
    for i, (label, colour) in enumerate(entries):
        x, y = (i % 4) * column + 4, (i // 4) * 16 + 2
        draw.rectangle([x, y, x + 12, y + 12], fill=colour, outline="black")
        draw.text((x + 16, y), label[:22], fill="black")
    return legend


def contact_sheet(splits: dict, class_names, palette, path: Path, per_split: int = 4) -> Path:
    """Write ``per_split`` evenly spaced images of each split (numpy Samples) to ``path``."""
    from PIL import Image

    from edgeseg._io import write_atomic

    rows = []
    for split, samples in splits.items():
        picks = np.linspace(0, len(samples) - 1, min(per_split, len(samples))).round().astype(int)
        rows.append([_tile(samples.images[i], samples.masks[i], palette, f"{split}/{samples.names[i]}") for i in picks])
    width = max(max(len(row) for row in rows) * TILE, 4 * 150)
    legend = _legend(class_names, palette, width)
    heights = [max(tile.height for tile in row) for row in rows]
    sheet = Image.new("RGB", (width, sum(heights) + legend.height), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * TILE, sum(heights[:r])))
    sheet.paste(legend, (0, sum(heights)))
    write_atomic(path, lambda f: sheet.save(f, format="PNG"))
    return path
