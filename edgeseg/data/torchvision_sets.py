"""Pascal VOC and Cityscapes, located (and for VOC downloaded) through ``torchvision.datasets``.

torchvision knows each dataset's directory layout; edgeseg takes its file lists and decodes
them with the same validation as every other loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data.samples import IGNORE, LabelMap, PairRef, index_label_map
from edgeseg.errors import CorruptDataError, DataError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def voc_palette(n: int = len(VOC_CLASSES)) -> list[tuple[int, int, int]]:
    """The standard VOC colour map (bit-interleaved class ids), for the first ``n`` ids."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def voc_pairs(root: Path, split: str, *, download: bool = False, year: str = "2012") -> list[PairRef]:
    from torchvision.datasets import VOCSegmentation

    try:
        ds = VOCSegmentation(str(root), year=year, image_set=split, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted..."
        raise DataError(f"{root}: Pascal VOC {year} '{split}' not usable: {exc}") from None
    return [PairRef(Path(i), Path(m)) for i, m in zip(ds.images, ds.masks, strict=True)]


voc_label_map = index_label_map(255)  # VOC marks object borders 255: ignore them


# the city: aachen_000000_000019_leftImg8bit (Cityscapes' splits are city-disjoint by design)
CITYSCAPES_GROUP_PATTERN = r"^([a-z]+)_"


def cityscapes_classes():
    from torchvision.datasets import Cityscapes

    return [c for c in Cityscapes.classes if 0 <= c.train_id < 255]


def cityscapes_pairs(root: Path, split: str) -> list[PairRef]:
    from torchvision.datasets import Cityscapes

    try:
        ds = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
    except RuntimeError as exc:
        raise DataError(f"{root}: Cityscapes '{split}' not usable: {exc}") from None
    return [PairRef(Path(i), Path(t[0])) for i, t in zip(ds.images, ds.targets, strict=True)]


def cityscapes_label_map() -> LabelMap:
    """labelIds (0..33, -1) to the 19 train ids; everything else is ignored."""
    from torchvision.datasets import Cityscapes

    table = np.full(256, IGNORE, dtype=np.int64)
    for c in Cityscapes.classes:
        if c.id >= 0 and 0 <= c.train_id < 255:
            table[c.id] = c.train_id

    def apply(raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 2:
            raise CorruptDataError(f"{path}: expected a labelIds PNG (single channel)")
        return table[raw.astype(np.int64).clip(0, 255)]

    return apply
