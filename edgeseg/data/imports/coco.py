"""COCO instance JSON (CVAT, Roboflow, Label Studio, FiftyOne exports): polygons and RLE.

Layouts found: ``annotations/instances_<split>.json`` with ``images/`` (CVAT, the COCO
originals), ``<split>/_annotations.coco.json`` with the images beside it (Roboflow), or one JSON
file (Label Studio's ``result.json``). pycocotools decodes RLE and rasterises polygons.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.data.imports.source import Item, Shape, Source
from edgeseg.errors import DataError

SPLIT_ALIASES = {
    "default": "train",
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def split_name(raw: str, where: Path) -> str:
    """The edgeseg split a source's subset becomes (CVAT's ``default`` is train)."""
    try:
        return SPLIT_ALIASES[raw.lower().rstrip("0123456789")]  # val2017 is val
    except KeyError:
        raise DataError(
            f"{where}: subset '{raw}' is not train, val or test (nor default, valid, validation): rename it"
        ) from None


def annotation_files(root: Path) -> list[tuple[Path, str]]:
    """Each COCO JSON under ``root`` with the split it holds."""
    if root.is_file():
        return [(root, "train")]
    layouts = (
        [(p, split_name(p.stem.split("_", 1)[-1], p)) for p in sorted((root / "annotations").glob("*.json"))],
        [(p, split_name(p.parent.name, p)) for p in sorted(root.glob("*/_annotations.coco.json"))],
        [(p, "train") for p in sorted(root.glob("*.json"))],
    )
    found = next((layout for layout in layouts if layout), None)
    if not found:
        raise DataError(f"{root}: no COCO JSON found (annotations/*.json, */_annotations.coco.json or *.json)")
    return found


def _load(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
        assert isinstance(document, dict) and {"images", "annotations", "categories"} <= document.keys()
        return document
    except (OSError, ValueError, AssertionError) as exc:
        why = "not COCO JSON (needs images, annotations and categories)" if isinstance(exc, AssertionError) else exc
        raise DataError(f"{path}: cannot read COCO annotations: {why}") from None


def _image_path(name: str, json_path: Path, root: Path) -> Path:
    """Beside the JSON, in images/, or in images/<subset>/ (the subset as the file names it:
    instances_default.json's images are in images/default/, as CVAT and Datumaro write them)."""
    base, subset = (root if root.is_dir() else json_path.parent), json_path.stem.split("_", 1)[-1]
    for folder in (json_path.parent, json_path.parent / "images", base / "images", base / "images" / subset, base):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{json_path}: image '{name}' not found beside it, in images/ or in images/{subset}/")


def _shape(annotation: dict, names: dict[int, str], where: str) -> Shape:
    if annotation.get("category_id") not in names:
        known = ", ".join(f"{i} {n}" for i, n in names.items())
        raise DataError(f"{where}: category_id {annotation.get('category_id')} is not among the categories ({known})")
    segmentation = annotation.get("segmentation")
    label, crowd = names[annotation["category_id"]], bool(annotation.get("iscrowd"))
    if isinstance(segmentation, dict):
        return Shape(label, "rle", segmentation, where, crowd=crowd)
    if isinstance(segmentation, list) and segmentation:
        return Shape(label, "polygon", segmentation, where, crowd=crowd)
    raise DataError(f"{where}: no segmentation (polygons or RLE); a box-only export cannot train segmentation")


def read(root: Path) -> Source:
    label_map: dict[int, str] = {}
    items: list[Item] = []
    for path, split in annotation_files(root):
        document = _load(path)
        names = {c["id"]: c["name"] for c in sorted(document["categories"], key=lambda c: c["id"])}
        if label_map and names != label_map:
            raise DataError(f"{path}: its categories differ from the other annotation files' ({label_map})")
        label_map = names
        shapes: dict[int, list[Shape]] = {image["id"]: [] for image in document["images"]}
        for annotation in document["annotations"]:
            where = f"{path} annotation {annotation.get('id')}"
            if annotation.get("image_id") not in shapes:
                raise DataError(f"{where}: image_id {annotation.get('image_id')} is not among the images")
            shapes[annotation["image_id"]].append(_shape(annotation, names, where))
        for image in document["images"]:
            name = image["file_name"]
            items.append(
                Item(
                    split,
                    _image_path(name, path, root),
                    Path(name).with_suffix("").as_posix().replace("/", "__"),
                    f"{path} image {image['id']} ({name})",
                    shapes=shapes[image["id"]],
                    size=(image["height"], image["width"]) if "height" in image else None,
                )
            )
    from importlib.metadata import version

    return Source(
        format="coco",
        label_map=list(label_map.values()),
        label_map_file=str(root),
        items=items,
        source_ids={name: i for i, name in label_map.items()},
        library=f"pycocotools {version('pycocotools')}",
    )
