"""Formats that store shapes per image: LabelMe JSON, Ultralytics YOLO segmentation, Label Studio.

- LabelMe: a JSON beside each image (``shapes``: polygon, rectangle, circle); the label map is
  ``labels.txt`` when the folder has one (labelme2voc's convention), else every label used.
  Later shapes in the file are drawn over earlier ones, as LabelMe shows them.
- YOLO (Ultralytics): ``data.yaml`` names the classes, ``labels/<split>/<stem>.txt`` holds
  ``class x1 y1 x2 y2 ...`` in fractions of the image size beside ``images/<split>/``.
- Label Studio: its JSON export (a list of tasks); ``brushlabels`` in Label Studio's own RLE,
  decoded with label-studio-converter, and ``polygonlabels`` in percent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edgeseg.data.folder import IMAGE_SUFFIXES
from edgeseg.data.imports.coco import split_name
from edgeseg.data.imports.source import Item, Shape, Source
from edgeseg.errors import DataError


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc})") from None


def _split_folders(root: Path) -> list[tuple[Path, str]]:
    subsets = [
        (p, split_name(p.name, p))
        for p in sorted(root.iterdir())
        if p.is_dir() and p.name.lower() in ("train", "val", "valid", "test")
    ]
    return subsets or [(root, "train")]


def _labelme_points(shape: dict, where: str) -> list[float]:
    points = [float(v) for xy in shape.get("points", []) for v in xy]
    kind = shape.get("shape_type") or "polygon"
    if kind == "rectangle" and len(points) == 4:
        x1, y1, x2, y2 = points
        return [x1, y1, x2, y1, x2, y2, x1, y2]
    if kind == "circle" and len(points) == 4:
        (cx, cy), radius = points[:2], math.dist(points[:2], points[2:])
        angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        return np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)]).ravel().tolist()
    if kind != "polygon":
        raise DataError(f"{where}: shape_type '{kind}' has no area (polygon, rectangle and circle do)")
    return points


def read_labelme(root: Path) -> Source:
    items, used = [], set()
    for folder, split in _split_folders(root):
        for path in sorted(folder.glob("*.json")):
            document = _json(path)
            shapes = []
            for z, shape in enumerate(document.get("shapes", [])):
                where = f"{path} shape {z} ('{shape.get('label')}')"
                shapes.append(Shape(str(shape.get("label")), "polygon", [_labelme_points(shape, where)], where, z=z))
                used.add(str(shape.get("label")))
            image = path.parent / document.get("imagePath", "")
            if not image.is_file():
                raise DataError(f"{path}: imagePath '{document.get('imagePath')}' not found beside it")
            size = (document["imageHeight"], document["imageWidth"]) if "imageHeight" in document else None
            items.append(Item(split, image, path.stem, str(path), shapes=shapes, size=size))
    labels_file = root / "labels.txt"
    if labels_file.is_file():  # labelme2voc: __ignore__ and _background_ are not classes
        names = [n for n in labels_file.read_text().split() if n not in ("__ignore__", "_background_")]
        missing = sorted(used - set(names))
        if missing:
            raise DataError(f"{labels_file}: labels {missing} are used by shapes but not listed")
        return Source("labelme", names, str(labels_file), items, library="labelme JSON")
    if not items:
        raise DataError(f"{root}: no LabelMe JSON files found")
    return Source("labelme", sorted(used), f"{root} (the labels its shapes use)", items, library="labelme JSON")


def _yolo_names(root: Path) -> list[str]:
    import yaml

    path = next((p for p in (root / "data.yaml", root / "dataset.yaml") if p.is_file()), None)
    if path is None:
        raise DataError(f"{root}: no data.yaml (Ultralytics names the classes there)")
    names = (yaml.safe_load(path.read_text()) or {}).get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names:
        raise DataError(f"{path}: 'names' is missing or empty")
    return [str(n) for n in names]


def _yolo_shapes(path: Path, names: list[str]) -> list[Shape]:
    shapes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            cls, *coords = line.split()
            cls, coords = int(cls), [float(v) for v in coords]
        except ValueError:
            raise DataError(f"{where}: expected 'class x1 y1 x2 y2 ...', got '{line}'") from None
        if not 0 <= cls < len(names):
            raise DataError(f"{where}: class {cls} is not in data.yaml's names (0-{len(names) - 1})")
        shapes.append(Shape(names[cls], "npolygon", [coords], where))
    return shapes


def read_yolo(root: Path) -> Source:
    names = _yolo_names(root)
    items = []
    for images in sorted(p for p in (root / "images").iterdir() if p.is_dir()) if (root / "images").is_dir() else []:
        split = split_name(images.name, images)
        for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = root / "labels" / images.name / f"{image.stem}.txt"
            shapes = _yolo_shapes(label, names) if label.is_file() else []
            items.append(Item(split, image, image.stem, str(label), shapes=shapes))
    if not items:
        raise DataError(f"{root}: no images under images/<split>/")
    return Source(
        "yolo-seg",
        names,
        str(root / "data.yaml"),
        items,
        source_ids=dict(zip(names, range(len(names)), strict=True)),
        library="Ultralytics YOLO txt",
    )


def _studio_shape(result: dict, where: str) -> Shape | None:
    from label_studio_converter import brush

    value, kind = result.get("value", {}), result.get("type")
    if kind == "brushlabels":
        height, width = result["original_height"], result["original_width"]
        rgba = np.asarray(brush.decode_rle(value["rle"])).reshape(height, width, 4)
        return Shape(value["brushlabels"][0], "mask", rgba[..., 3] > 0, where)
    if kind == "polygonlabels":
        points = [v / 100 for xy in value["points"] for v in xy]
        return Shape(value["polygonlabels"][0], "npolygon", [points], where)
    return None  # choices, text and other results carry no pixels


def read_label_studio(root: Path) -> Source:
    from importlib.metadata import version

    path = root if root.is_file() else next(iter(sorted(root.glob("*.json"))), None)
    if path is None:
        raise DataError(f"{root}: no Label Studio JSON export found")
    tasks, items, used = _json(path), [], set()
    for task in tasks:
        image_ref = Path(str(task.get("data", {}).get("image", "")))
        image = next(
            (p for p in (path.parent / image_ref.name, path.parent / "images" / image_ref.name) if p.is_file()), None
        )
        if image is None:
            raise DataError(f"{path} task {task.get('id')}: image '{image_ref.name}' not found beside it or in images/")
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        results = annotations[0]["result"] if annotations else []
        shapes = []
        for z, result in enumerate(results):
            shape = _studio_shape(result, f"{path} task {task.get('id')} result {result.get('id')}")
            if shape is not None:
                shapes.append(Shape(shape.label, shape.kind, shape.data, shape.where, z=z))
                used.add(shape.label)
        items.append(Item("train", image, image.stem, f"{path} task {task.get('id')}", shapes=shapes))
    library = f"label-studio-converter {version('label-studio-converter')}"
    return Source("label-studio", sorted(used), f"{path} (the labels its results use)", items, library=library)
