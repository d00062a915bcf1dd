"""``edgeseg data import``: a labelling tool's export to edgeseg's ``folder`` layout.

``IMPORT_FORMATS`` is the one table of annotation formats: the CLI's choices derive from it, and
a test holds the recipe's ``IMPORT_FORMAT_NAMES`` equal to it. Each entry names its reader
(imported only when used). Datumaro was the first choice; its current release (1.13) pins
pandas 2.3, pillow 12 and opencv-python-headless 4, against this project's lock (pandas 3.1,
pillow 13, opencv-python 5), so the readers use pycocotools, torchvision's Cityscapes table and
label-studio-converter, and parse the plain text and JSON formats themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.registry import lookup, table


@dataclass(frozen=True)
class ImportFormat:
    name: str
    tools: str  # who exports it
    reader: str  # "module:function" under edgeseg.data.imports
    dense: bool  # a class per pixel (no uncovered pixels, so no --background)

    def read(self, root: Path):
        from edgeseg.formats import entry_point

        return entry_point(f"edgeseg.data.imports.{self.reader}")(root)


IMPORT_FORMATS = table(
    [
        ImportFormat(
            "cvat-mask", 'CVAT "Segmentation mask 1.1" (labelmap.txt + RGB masks)', "masks:read_cvat_mask", True
        ),
        ImportFormat("coco", "COCO JSON: CVAT, Roboflow, Label Studio, FiftyOne (polygons, RLE)", "coco:read", False),
        ImportFormat("cityscapes", "Cityscapes gtFine labelIds (to its 19 trainIds)", "masks:read_cityscapes", True),
        ImportFormat("labelme", "LabelMe JSON beside each image", "shapes:read_labelme", False),
        ImportFormat("yolo-seg", "Ultralytics YOLO segmentation (data.yaml + polygon .txt)", "shapes:read_yolo", False),
        ImportFormat("voc", "Pascal VOC palette PNGs (SegmentationClass)", "masks:read_voc", True),
        ImportFormat(
            "label-studio", "Label Studio JSON export (brush RLE, polygons)", "shapes:read_label_studio", False
        ),
    ],
    "annotation format",
)
FORMAT_NAMES = tuple(IMPORT_FORMATS)  # == edgeseg.recipe.IMPORT_FORMAT_NAMES (the recipe validates by it)


def cached_import(src: Path, fmt: str) -> Path:
    """``data: {dataset: import}``: ``src`` imported once into ``$EDGESEG_CACHE/imports/``, keyed by
    the format and the source's files (paths, sizes, mtimes: what keys the build's data stage)."""
    import fcntl
    import hashlib
    import json

    from edgeseg._io import folder_fingerprint
    from edgeseg.data.imports.write import MARKER
    from edgeseg.runtimes.debian_cache import cache_dir

    if src.is_dir():
        files = folder_fingerprint(str(src))
    else:  # one JSON file (COCO, Label Studio): the images beside it are read from there
        stat = src.stat()
        files = [str(src.resolve()), stat.st_size, stat.st_mtime_ns]
    key = json.dumps([fmt, files], sort_keys=True)
    out = cache_dir() / "imports" / f"{fmt}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if (out / MARKER).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build waits for the first one's import
        if not (out / MARKER).is_file():
            import_dataset(src, fmt, out)
    return out


def import_dataset(
    src: Path,
    fmt: str,
    out: Path,
    *,
    background: str | None = None,
    keep_empty_classes: bool = False,
    crowd: str = "ignore",
) -> dict:
    """Read ``src`` as ``fmt`` and publish it at ``out``; nothing is written there unless all of
    it converts (a scratch folder beside it is swapped in at the end).

    Raises:
        UnknownNameError: an unknown format (exit 2). DataError: the first bad file, named (exit 4).
    """
    import yaml

    from edgeseg._io import staged_dir, write_text_atomic
    from edgeseg.data.imports.source import CROWD_MODES
    from edgeseg.data.imports.write import MARKER, write_folder
    from edgeseg.errors import DataError

    entry = lookup(IMPORT_FORMATS, fmt, "annotation format")
    if crowd not in CROWD_MODES:
        raise DataError(f"--crowd: '{crowd}' is not {' or '.join(CROWD_MODES)}")
    if background and entry.dense:
        raise DataError(f"--background: {fmt} labels every pixel; it applies to polygon formats only")
    if not src.exists():
        raise DataError(f"{src}: not found")
    with staged_dir(out, MARKER) as scratch:
        source = entry.read(src)
        dataset = write_folder(source, scratch, background, keep_empty_classes, crowd)
        dataset["source"]["root"] = str(src.resolve())
        write_text_atomic(scratch / MARKER, yaml.safe_dump(dataset, sort_keys=False))
    return dataset
