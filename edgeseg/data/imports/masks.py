"""Formats that store a class per pixel: CVAT "Segmentation mask 1.1", Pascal VOC, Cityscapes.

CVAT's export is VOC's layout (``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/Segmentation/
<subset>.txt``) with RGB masks whose colours ``labelmap.txt`` names. VOC's own masks are palette
PNGs whose index is the class (255, the object borders, is ignored). Cityscapes' ``labelIds``
become its 19 ``trainIds`` through the label table torchvision ships (cityscapesScripts' own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data.folder import IMAGE_SUFFIXES
from edgeseg.data.imports.coco import split_name
from edgeseg.data.imports.source import IGNORE, Item, Source
from edgeseg.errors import DataError


def _labelmap(path: Path) -> dict[str, tuple[int, int, int]]:
    """``labelmap.txt``: ``name:r,g,b:parts:actions`` per line, ``#`` comments. A line without a
    colour (``road:::``, as Datumaro writes without a colormap) takes VOC's colour for its index."""
    from edgeseg.data.torchvision_sets import voc_palette

    if not path.is_file():
        raise DataError(f"{path}: not found (a CVAT 'Segmentation mask 1.1' export has labelmap.txt)")
    colours = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            name, rgb = line.split(":")[:2]
            r, g, b = (int(v) for v in rgb.split(",")) if rgb else voc_palette(len(colours) + 1)[-1]
        except ValueError:
            raise DataError(f"{path}:{number}: expected 'name:r,g,b::', got '{line}'") from None
        colours[name] = (r, g, b)
    return colours


def _voc_items(root: Path, decode) -> list[Item]:
    """Images listed in ``ImageSets/Segmentation/<subset>.txt`` (all masks when none are)."""
    lists = sorted((root / "ImageSets" / "Segmentation").glob("*.txt"))
    masks_dir = root / "SegmentationClass"
    subsets = {split_name(p.stem, p): p.read_text().split() for p in lists if p.stem != "trainval"}
    if not subsets:
        subsets = {"train": sorted(p.stem for p in masks_dir.glob("*.png"))}
    items = []
    for split, stems in subsets.items():
        for stem in stems:
            candidates = (root / "JPEGImages" / f"{stem}{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
            image = next((path for path in candidates if path.is_file()), None)
            if image is None:
                raise DataError(f"{root / 'JPEGImages'}: no image for '{stem}', which the subset lists")
            mask = masks_dir / f"{stem}.png"
            read = (lambda m=mask: decode(m)) if mask.is_file() else None
            items.append(Item(split, image, stem, str(mask), mask=read))
    return items


def read_cvat_mask(root: Path) -> Source:
    from edgeseg.data.samples import read_mask

    colours = _labelmap(root / "labelmap.txt")
    names = list(colours)
    codes = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(colours.values())}

    def decode(path: Path) -> np.ndarray:
        rgb = read_mask(path)
        if rgb.ndim == 2:
            raise DataError(f"{path}: expected an RGB mask coloured by labelmap.txt, got a single-channel image")
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        out = np.full(packed.shape, 256, dtype=np.int64)
        for code, index in codes.items():
            out[packed == code] = index
        if (out == 256).any():
            y, x = np.argwhere(out == 256)[0]
            raise DataError(
                f"{path}: colour {tuple(int(v) for v in rgb[y, x])} at x={x}, y={y} is not in "
                f"{root / 'labelmap.txt'} ({', '.join(names)})"
            )
        return out.astype(np.uint8)

    return Source("cvat-mask", names, str(root / "labelmap.txt"), _voc_items(root, decode), palette=colours)


def read_voc(root: Path) -> Source:
    from edgeseg.data.samples import read_mask
    from edgeseg.data.torchvision_sets import VOC_CLASSES, voc_palette

    def decode(path: Path) -> np.ndarray:
        index = read_mask(path)
        if index.ndim != 2:
            raise DataError(f"{path}: expected a VOC palette (index) PNG, got an RGB image")
        unknown = (index >= len(VOC_CLASSES)) & (index != IGNORE)
        if unknown.any():
            y, x = np.argwhere(unknown)[0]
            raise DataError(f"{path}: class index {int(index[y, x])} at x={x}, y={y} is not a VOC class (0-20, 255)")
        return index.astype(np.uint8)

    palette = dict(zip(VOC_CLASSES, voc_palette(), strict=True))
    items = _voc_items(root, decode)
    return Source("voc", list(VOC_CLASSES), "the Pascal VOC classes", items, palette=palette, standard_classes=True)


def read_cityscapes(root: Path) -> Source:
    from edgeseg.data.samples import read_mask
    from edgeseg.data.torchvision_sets import CITYSCAPES_GROUP_PATTERN, cityscapes_classes, cityscapes_label_map

    classes, train_ids = cityscapes_classes(), cityscapes_label_map()

    def decode(path: Path) -> np.ndarray:
        ids = read_mask(path)
        if ids.ndim != 2 or ids.max() > 33:
            raise DataError(f"{path}: expected a Cityscapes labelIds PNG (ids 0-33)")
        return train_ids(ids, path).astype(np.uint8)

    items = []
    for mask in sorted((root / "gtFine").glob("*/*/*_gtFine_labelIds.png")):
        city_dir = mask.parent.relative_to(root / "gtFine")
        stem = mask.name.removesuffix("_gtFine_labelIds.png")
        image = root / "leftImg8bit" / city_dir / f"{stem}_leftImg8bit.png"
        if not image.is_file():
            raise DataError(f"{image}: not found (the image of {mask})")
        items.append(Item(split_name(city_dir.parts[0], mask), image, stem, str(mask), mask=lambda m=mask: decode(m)))
    if not items:
        raise DataError(f"{root}: no gtFine/<split>/<city>/*_gtFine_labelIds.png found")
    return Source(
        "cityscapes",
        [c.name for c in classes],
        "the Cityscapes label table",
        items,
        source_ids={c.name: c.id for c in classes},
        palette={c.name: tuple(c.color) for c in classes},
        group_pattern=CITYSCAPES_GROUP_PATTERN,
        standard_classes=True,
    )
