"""The artifact bundle: a model file plus ``model.json``, everything an app needs to run it.

Torch-free on purpose: the deployment kit, ``edgeseg bench`` on a device and the runtimes read
bundles with only the standard library and numpy.

    runs/<recipe>/export-onnx-int8/
        model.onnx      the artifact (its metadata also embedded: ONNX metadata_props["edgeseg"])
        model.json      the sidecar: classes, input, output, precision, verification, versions
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeseg.errors import EdgesegError

SIDECAR = "model.json"
BUNDLE_FORMAT = "edgeseg.bundle/1"
METADATA_KEY = "edgeseg"  # ONNX metadata_props key / OpenVINO rt_info section


def read_sidecar(bundle: Path | str) -> dict:
    """``model.json`` of a bundle directory (or of the directory holding an artifact file)."""
    bundle = Path(bundle)
    directory = bundle if bundle.is_dir() else bundle.parent
    path = directory / SIDECAR
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgesegError(f"{path}: no model.json beside the artifact (is {bundle} an edgeseg bundle?)") from None
    except (OSError, ValueError) as exc:
        raise EdgesegError(f"{path}: unreadable model.json ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise EdgesegError(f"{path}: not an edgeseg bundle (format {found!r}, expected {BUNDLE_FORMAT})")
    missing = [".".join(keys) for keys in REQUIRED if not _has(meta, keys)]
    if missing:
        raise EdgesegError(f"{path}: invalid model.json: no {', '.join(missing)}")
    return meta


# What every reader of a bundle relies on.
REQUIRED = (
    ("artifact", "file"), ("artifact", "format"), ("artifact", "precision"), ("input", "size"), ("input", "dtype"),
    ("input", "preprocessing", "in_graph"), ("output", "kind"), ("classes", "names"),
)  # fmt: skip


def _has(meta: dict, keys: tuple[str, ...]) -> bool:
    node = meta
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def artifact_path(bundle: Path | str) -> Path:
    """The model file of a bundle directory; a model path (a file, or a directory format such as
    Core ML's ``.mlpackage``) is returned as it is."""
    from edgeseg.formats import runtimes_for_suffix

    bundle = Path(bundle)
    if bundle.is_file() or bundle.suffix in runtimes_for_suffix():
        return bundle
    meta = read_sidecar(bundle)
    return bundle / meta["artifact"]["file"]
