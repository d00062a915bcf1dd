"""Colour overlays a person can look at: the image with each class painted in its colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data.colours import overlay


def predict_files(checkpoint: Path, images: list[Path], out_dir: Path, alpha: float = 0.5) -> list[Path]:
    """Write ``<stem>_overlay.png`` and ``<stem>_classes.png`` (palette PNG) for each image.

    Returns:
        The overlay paths, in input order.
    """
    from edgeseg.errors import RecipeError
    from edgeseg.models.checkpoint import load_model

    if out_dir.exists() and not out_dir.is_dir():
        raise RecipeError(f"--out {out_dir}: a file is in the way; give a directory")
    loaded = load_model(checkpoint)
    created = not out_dir.exists()
    written: list[Path] = []
    try:
        for path in images:
            written.append(_predict_one(loaded, path, out_dir, alpha))
    finally:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a failure before the first file leaves nothing behind
    return written


def _predict_one(loaded, path: Path, out_dir: Path, alpha: float) -> Path:
    """Both PNGs for one image; the folder is made once there is something to put in it."""
    import torch
    from PIL import Image

    from edgeseg.data.samples import read_image
    from edgeseg.eval import predict_logits

    rgb = read_image(path)
    batch = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    logits = predict_logits(loaded.model, batch, loaded.mean, loaded.std, loaded.input_size)
    classes = logits.argmax(1)[0].numpy().astype(np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}_overlay.png"
    _save_png(Image.fromarray(overlay(rgb, classes, loaded.palette, alpha)), target)
    class_png = Image.fromarray(classes, mode="P")
    class_png.putpalette([v for c in loaded.palette for v in c])
    _save_png(class_png, out_dir / f"{path.stem}_classes.png")
    return target


def _save_png(image, path: Path) -> None:
    """Whole or not at all, and a failed write names the file (PIL's does not)."""
    from edgeseg._io import write_atomic

    write_atomic(path, lambda stream: image.save(stream, format="PNG"), fsync=False)
