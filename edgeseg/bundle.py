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
from typing import TYPE_CHECKING

from edgeseg.errors import EdgesegError, ExportError

if TYPE_CHECKING:
    import numpy as np

SIDECAR = "model.json"
BUNDLE_FORMAT = "edgeseg.bundle/2"  # /2: the bundle carries its proof (proof.npz)
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
        again = " (an older bundle: export it again)" if str(found).startswith("edgeseg.bundle/") else ""
        raise EdgesegError(f"{path}: not an edgeseg bundle (format {found!r}, expected {BUNDLE_FORMAT}){again}")
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
    return artifact_inside(bundle, read_sidecar(bundle))


def prepare(images: list[np.ndarray], meta: dict) -> np.ndarray:
    """HxWx3 uint8 RGB images -> the N×3×H×W (or N×H×W×3) batch ``meta`` describes."""
    import numpy as np
    from PIL import Image

    height, width = meta["input"]["size"]
    resized = [np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR)) for img in images]
    channels_last = meta["input"].get("layout") == "NHWC"
    pixels = np.stack(resized) if channels_last else np.stack(resized).transpose(0, 3, 1, 2)
    pre = meta["input"]["preprocessing"]
    if pre["in_graph"]:
        return np.ascontiguousarray(pixels)
    shape = (1, 1, 1, 3) if channels_last else (1, 3, 1, 1)
    mean = np.asarray(pre["mean"], np.float32).reshape(shape)
    std = np.asarray(pre["std"], np.float32).reshape(shape)
    return np.ascontiguousarray((pixels.astype(np.float32) / 255.0 - mean) / std)


def class_ids(output: np.ndarray, meta: dict) -> np.ndarray:
    return output if meta["output"]["kind"] == "class_map" else output.argmax(1)


# ---------------------------------------------------------------------------------------------
# A bundle proves its own model.json (written at export; checked by bench, --remote's device
# and the deployment kit before use). A hand-edited mean/std, class list, input size or artifact
# file otherwise yields confident figures for a model nobody exported.

PROOF = "proof.npz"

# The model.json fields a reader acts on, copied into proof.npz at export and compared field by field.
PROVEN = (
    ("input", "size"), ("input", "layout"), ("input", "dtype"), ("input", "preprocessing", "in_graph"),
    ("input", "preprocessing", "mean"), ("input", "preprocessing", "std"), ("input", "quantization"),
    ("output", "kind"), ("classes", "names"),
)  # fmt: skip

# Pixels of the reference image whose class must come out as at export. Not 1.0: int8 kernels
# differ across instruction sets (98.8% measured for AVX2 against VNNI on CamVid); a wrong
# mean/std or size lands far lower (37% measured).
MIN_AGREEMENT = 0.9

# For logits: the mean absolute difference from the export's logits, in units of their standard
# deviation. A model that predicts one class nearly everywhere keeps its class ids under a
# wrong mean/std; its logits do not.
MAX_LOGIT_ERROR = 0.15


def artifact_inside(bundle: Path, meta: dict) -> Path:
    """``artifact.file`` as a path inside ``bundle``: a name that leaves it is refused (exit 8)."""
    name = str(meta["artifact"]["file"])
    entry = Path(name)
    if entry.is_absolute() or ".." in entry.parts or not (bundle / entry).resolve().is_relative_to(bundle.resolve()):
        raise ExportError(f"{bundle / SIDECAR}: artifact.file {name!r} points outside the bundle")
    return bundle / entry


def artifact_digest(path: Path) -> str:
    """sha256 of the artifact: its bytes, or for a directory format (.mlpackage) every file's
    relative name and bytes, in order."""
    import hashlib

    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode())
        with open(file, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _field(meta: dict, keys: tuple[str, ...]):
    node = meta
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def write_proof(bundle: Path, meta: dict, image, output) -> dict:
    """At export: ``proof.npz`` (the proven fields, a reference RGB image and the artifact's
    output for it: class ids, and the logits too where the artifact gives logits; ``output``
    None where no runtime here runs it) and model.json's ``proof`` entry. Returns that entry."""
    import numpy as np

    facts = json.dumps({".".join(keys): _field(meta, keys) for keys in PROVEN}, sort_keys=True)
    arrays = {"facts": np.array(facts), "image": np.asarray(image, dtype=np.uint8)}
    if output is not None:
        arrays["classes"] = class_ids(output, meta)[0].astype(np.uint8)
        if meta["output"]["kind"] != "class_map":
            arrays["logits"] = np.asarray(output[0], dtype=np.float32)
    np.savez_compressed(bundle / PROOF, **arrays)
    artifact = artifact_inside(bundle, meta)
    entry = {"file": PROOF, "artifact_sha256": artifact_digest(artifact), "min_agreement": MIN_AGREEMENT}
    return {**entry, "max_logit_error": MAX_LOGIT_ERROR}


def verify_proof(bundle: Path, meta: dict, run=None) -> float | None:
    """Before a bundle is used: its artifact is the one exported, model.json says what the
    export wrote, and ``run`` (batch -> output) reproduces the reference class ids.

    Returns:
        The reference pixels' agreement (None without ``run`` or a reference output).

    Raises:
        ExportError: naming model.json and the field that lies (exit 8).
    """
    import json

    import numpy as np

    sidecar = bundle / SIDECAR
    proof = meta.get("proof")
    if not isinstance(proof, dict) or not (bundle / PROOF).is_file():
        raise ExportError(f"{sidecar}: no proof ({PROOF} and model.json 'proof'); export the bundle again")
    artifact = artifact_inside(bundle, meta)
    if artifact_digest(artifact) != proof.get("artifact_sha256"):
        raise ExportError(f"{sidecar}: artifact.file {artifact.name}: not the file exported (its sha256 differs)")
    try:
        with np.load(bundle / PROOF, allow_pickle=False) as stored:
            facts, image = json.loads(str(stored["facts"])), stored["image"]
            expected = {k: stored[k] for k in ("classes", "logits") if k in stored.files}
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{bundle / PROOF}: unreadable ({str(exc)[:200]})") from None
    for keys in PROVEN:
        name = ".".join(keys)
        if _field(meta, keys) != facts.get(name):
            raise ExportError(f"{sidecar}: {name} is {_field(meta, keys)!r}; the export wrote {facts.get(name)!r}")
    if run is None or "classes" not in expected:
        return None
    return _agreement(sidecar, meta, run, image, expected, proof)


def _agreement(sidecar: Path, meta: dict, run, image, expected: dict, proof: dict) -> float:
    try:
        output = run(prepare([image], meta))
    except Exception as exc:  # a runtime's own words for a graph model.json does not describe
        raise ExportError(f"{sidecar}: the artifact does not run as model.json says ({str(exc)[:200]})") from None
    produced, reference = class_ids(output, meta)[0], expected["classes"]
    agreement = float((produced == reference).mean()) if produced.shape == reference.shape else 0.0
    least = float(proof.get("min_agreement", MIN_AGREEMENT))
    error = _logit_error(output[0], expected.get("logits"))
    if agreement < least or error > float(proof.get("max_logit_error", MAX_LOGIT_ERROR)):
        raise ExportError(
            f"{sidecar}: the reference image gives another output than at export ({agreement:.1%} of pixels agree, "
            f"at least {least:.0%} expected; logit error {error:.2f} sd): model.json's input or output does not "
            "describe the artifact"
        )
    return agreement


def _logit_error(produced, reference) -> float:
    """Mean |produced - reference| in units of the reference's standard deviation (0 without logits)."""
    import numpy as np

    if reference is None:
        return 0.0
    produced = np.asarray(produced, dtype=np.float32)
    if produced.shape != reference.shape:
        return float("inf")
    return float(np.abs(produced - reference).mean() / (reference.std() + 1e-6))
