"""A user's own data: ``<root>/<split>/images/`` and ``<root>/<split>/masks/`` with matching stems.

Masks are index PNGs (pixel value = class id, ``data.ignore_index`` = ignore) or RGB PNGs whose
colours are listed in ``data.palette`` (one colour per class, in class-id order).
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.samples import LabelMap, PairRef, index_label_map, palette_label_map
from edgeseg.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def pairs(root: Path, split: str) -> list[PairRef]:
    images_dir, masks_dir = root / split / "images", root / split / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"{d}: folder not found (dataset 'folder' expects {split}/images and {split}/masks)")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{images_dir}: no images found")
    return [PairRef(img, masks.get(img.stem)) for img in images]


def imported(root: str | None) -> dict | None:
    """The ``dataset.yaml`` that ``edgeseg data import`` wrote in ``root``, if any."""
    import yaml

    path = Path(root or "") / "dataset.yaml"
    if not root or not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def label_map(palette, ignore_index: int) -> LabelMap:
    return palette_label_map(palette, ignore_index) if palette else index_label_map(ignore_index)
