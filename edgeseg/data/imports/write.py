"""A read ``Source`` written as edgeseg's ``folder`` layout plus ``dataset.yaml``.

``<out>/<split>/images/<name>`` (the photo as the annotation tool showed it) and
``<out>/<split>/masks/<name>.png`` (single-channel uint8 class ids, 255 = ignore). Class ids are
contiguous: an optional background class first, then the label map in the source's order; the
mapping from the source's ids is recorded. Everything is checked before ``--out`` changes.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from edgeseg.data.imports.source import IGNORE, OVERLAP_RULE, Item, Source, rasterise
from edgeseg.errors import DataError

MARKER = "dataset.yaml"


def class_table(source: Source, background: str | None) -> list[str]:
    """Output class names in id order: ``background`` first when asked for and not in the map."""
    return ([background] if background and background not in source.label_map else []) + list(source.label_map)


def write_folder(source: Source, out: Path, background: str | None, keep_empty_classes: bool, crowd: str) -> dict:
    """Write every annotated image of ``source`` under ``out``; returns dataset.yaml's content."""
    names = class_table(source, background)
    index = {name: i for i, name in enumerate(names)}
    uncovered = index[background] if background else IGNORE
    pixels: Counter[int] = Counter()
    splits: dict[str, dict] = {}
    for item in source.items:
        split = splits.setdefault(item.split, {"images": 0, "unannotated": [], "exif_rotated": [], "crowd_regions": 0})
        if not item.shapes and item.mask is None:
            split["unannotated"].append(item.name)  # reported, never trained on as all-background
            continue
        mask, rotated = _write_item(item, out, index, uncovered, crowd)
        split["crowd_regions"] += sum(s.crowd for s in item.shapes or [])
        split["images"] += 1
        split["exif_rotated"] += [item.name] if rotated else []
        values, counts = np.unique(mask, return_counts=True)
        pixels.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
    _check_classes(source, names, pixels, keep_empty_classes)
    if not any(s["images"] for s in splits.values()):
        raise DataError(f"{source.label_map_file}: no image has annotations; nothing to import")
    return _dataset_yaml(source, names, splits, pixels) | {"crowd": crowd}


def _write_item(item: Item, out: Path, index: dict[str, int], uncovered: int, crowd: str) -> tuple[np.ndarray, bool]:
    from PIL import Image

    from edgeseg.data.samples import read_photo

    photo, rotated = read_photo(item.image)
    height, width = photo.shape[:2]
    if item.size and tuple(item.size) != (height, width):
        raise DataError(
            f"{item.where}: the annotation is for a {item.size[1]}x{item.size[0]} image but {item.image} is "
            f"{width}x{height} (as shown, EXIF orientation applied)"
        )
    mask = item.mask() if item.shapes is None else rasterise(item.shapes, height, width, index, uncovered, crowd)
    if mask.shape != (height, width):
        raise DataError(
            f"{item.where}: mask is {mask.shape[1]}x{mask.shape[0]}, image {item.image} is {width}x{height}"
        )
    images, masks = out / item.split / "images", out / item.split / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    if rotated:  # stored as the tool showed it, losslessly
        Image.fromarray(photo).save(images / f"{item.name}.png")
    else:
        shutil.copyfile(item.image, images / f"{item.name}{item.image.suffix.lower()}")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(masks / f"{item.name}.png")
    return mask, rotated


def _check_classes(source: Source, names: list[str], pixels: Counter, keep_empty_classes: bool) -> None:
    empty = [name for i, name in enumerate(names) if name in source.label_map and not pixels.get(i)]
    if empty and not (keep_empty_classes or source.standard_classes):
        raise DataError(
            f"{source.label_map_file}: the label map lists {', '.join(map(repr, empty))} but no annotation uses "
            "it: drop it from the label map, or pass --keep-empty-classes (a class without pixels is never learnt)"
        )


def _dataset_yaml(source: Source, names: list[str], splits: dict, pixels: Counter) -> dict:
    from edgeseg.data.colours import default_palette

    fallback = default_palette(len(names))
    total = sum(pixels.values()) or 1
    return {
        "format": "edgeseg-folder/1",
        "source": {"format": source.format, "library": source.library},
        "class_names": names,
        "palette": [list(source.palette.get(name, fallback[i])) for i, name in enumerate(names)],
        "ignore_index": IGNORE,
        "class_ids": {name: {"id": i, "source_id": source.source_ids.get(name)} for i, name in enumerate(names)},
        "pixel_share": {name: round(pixels.get(i, 0) / total, 6) for i, name in enumerate(names)},
        "ignored_share": round(pixels.get(IGNORE, 0) / total, 6),
        "overlap_rule": OVERLAP_RULE,
        "group_pattern": source.group_pattern,
        "splits": splits,
    }
