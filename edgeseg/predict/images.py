"""Colour overlays a person can look at: the image with each class painted in its colour."""

from __future__ import annotations

import contextlib
from pathlib import Path

from edgeseg.predict import kit


def predict_files(segmenter, images: list[Path], out_dir: Path, alpha: float = 0.5) -> tuple[list[Path], dict]:
    """Write ``<stem>_overlay.png`` and ``<stem>_classes.png`` (palette PNG) for each image.

    Returns:
        The overlay paths, in input order, and ``kit.summarise`` of the frames' stage timings.
    """
    frames_ms: list[dict[str, float]] = []
    with output_folder(out_dir):
        written = [_predict_one(segmenter, path, out_dir, alpha, frames_ms) for path in images]
    return written, kit.summarise(frames_ms)


@contextlib.contextmanager
def output_folder(folder: Path):
    """Refuse a file in the folder's place; a folder this made stays only if something is in it."""
    from edgeseg.errors import RecipeError

    if folder.exists() and not folder.is_dir():
        raise RecipeError(f"--out {folder}: a file is in the way; give a directory")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failure before the first file leaves nothing behind


def _predict_one(segmenter, path: Path, out_dir: Path, alpha: float, frames_ms: list) -> Path:
    from PIL import Image

    from edgeseg.data.samples import read_image

    clock = kit.Clock()
    rgb = clock("decode", read_image(path))
    frame = segmenter.segment(rgb, alpha)
    frames_ms.append(clock.ms | frame.ms)
    target = out_dir / f"{path.stem}_overlay.png"
    _save_png(frame.overlay, target)
    class_png = Image.fromarray(frame.classes, mode="P")
    class_png.putpalette(segmenter.palette_bytes)
    _save_png(class_png, out_dir / f"{path.stem}_classes.png")
    return target


def _save_png(image, path: Path) -> None:
    """Whole or not at all, and a failed write names the file (PIL's does not)."""
    from edgeseg._io import write_atomic

    write_atomic(path, lambda stream: image.save(stream, format="PNG"), fsync=False)
