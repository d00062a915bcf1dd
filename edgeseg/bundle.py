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
    if meta.get("format") != BUNDLE_FORMAT:
        raise EdgesegError(f"{path}: not an edgeseg bundle (format {meta.get('format')!r}, expected {BUNDLE_FORMAT})")
    return meta


def artifact_path(bundle: Path | str) -> Path:
    """The model file of a bundle directory; a file path is returned as it is."""
    bundle = Path(bundle)
    if bundle.is_file():
        return bundle
    meta = read_sidecar(bundle)
    return bundle / meta["artifact"]["file"]
