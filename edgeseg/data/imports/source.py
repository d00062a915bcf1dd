"""What every annotation reader hands over, and the one way shapes become a class-id mask.

A reader turns a tool's export into a ``Source``: the label map in the source's order and, per
image, either a dense mask (palette and id PNGs: CVAT, VOC, Cityscapes) or the shapes drawn on
it (polygons and RLE: COCO, LabelMe, YOLO, Label Studio). ``rasterise`` paints shapes by one
rule for every format, so the same drawing gives the same pixels whichever tool exported it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import DataError

IGNORE = 255

# Said in the README and recorded in dataset.yaml: larger shapes first, so a smaller shape drawn
# inside a larger one stays visible (Ultralytics' rule); a source's own z-order (CVAT's z_order)
# ranks first; crowd regions are ignored whatever lies under them, unless asked to keep their
# class (CVAT and Datumaro write brush masks to COCO as crowd RLE).
CROWD_MODES = ("ignore", "label")  # --crowd: crowd regions become 255, or keep their class
OVERLAP_RULE = (
    "source z-order first, then larger shapes under smaller ones; crowd regions ignored (--crowd label: kept)"
)


@dataclass(frozen=True)
class Shape:
    """One annotated region: polygons (flat x, y lists in pixels, or in fractions of the image's
    width and height for "npolygon"), a COCO RLE, or a boolean mask."""

    label: str
    kind: str  # "polygon" | "npolygon" | "rle" | "mask"
    data: object
    where: str  # the file and annotation id, for errors
    crowd: bool = False
    z: int = 0


@dataclass
class Item:
    """One image of the source and its labels (``shapes`` or a dense ``mask`` of label-map
    indices with IGNORE); neither means the image is not annotated."""

    split: str
    image: Path
    name: str
    where: str
    shapes: list[Shape] | None = None
    mask: Callable[[], np.ndarray] | None = None  # read when written: a dataset need not fit in memory
    size: tuple[int, int] | None = None  # (H, W) the annotation tool saw, when the source says


@dataclass
class Source:
    """A tool's export, read: its label map (names in source order) and its images."""

    format: str
    label_map: list[str]
    label_map_file: str  # where the label map came from, for errors
    items: list[Item]
    source_ids: dict[str, object] = field(default_factory=dict)  # name -> the id in the source
    palette: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    group_pattern: str | None = None
    library: str = ""
    standard_classes: bool = False  # a dataset's fixed table (VOC, Cityscapes): unused classes stay


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """The shape's pixels as a bool HxW array (pycocotools rasterises polygons and RLE)."""
    from pycocotools import mask as coco_mask

    if shape.kind == "mask":
        return np.asarray(shape.data, dtype=bool)
    if shape.kind in ("polygon", "npolygon"):
        scale = np.array([width, height] if shape.kind == "npolygon" else [1, 1], dtype=np.float64)
        polygons = []
        for points in shape.data:
            if len(points) < 6 or len(points) % 2:
                raise DataError(f"{shape.where}: a polygon needs at least 3 points (x, y pairs), got {points}")
            polygons.append((np.asarray(points, dtype=np.float64).reshape(-1, 2) * scale).ravel().tolist())
        rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    else:
        rle = shape.data
        if isinstance(rle.get("counts"), list):  # uncompressed RLE, as COCO stores crowd regions
            rle = coco_mask.frPyObjects(rle, height, width)
        if list(rle["size"]) != [height, width]:
            raise DataError(f"{shape.where}: RLE size {list(rle['size'])} is not the image's {[height, width]}")
    return coco_mask.decode(rle).astype(bool)


def rasterise(
    shapes: list[Shape], height: int, width: int, index: dict[str, int], background: int, crowd: str = "ignore"
) -> np.ndarray:
    """Paint ``shapes`` into an HxW uint8 mask of label-map indices by ``OVERLAP_RULE``;
    pixels no shape covers get ``background`` (IGNORE unless a background class was asked for).
    ``crowd``: "ignore" paints crowd regions IGNORE over everything, "label" paints their class."""
    out = np.full((height, width), background, dtype=np.uint8)
    painted = [(shape, shape_mask(shape, height, width)) for shape in shapes]
    ignoring = crowd == "ignore"
    ignored = [p for p in painted if ignoring and p[0].crowd]
    solid = sorted((p for p in painted if not (ignoring and p[0].crowd)), key=lambda p: (p[0].z, -int(p[1].sum())))
    for shape, pixels in solid:
        out[pixels] = index[shape.label]
    for _, pixels in ignored:
        out[pixels] = IGNORE
    return out
