"""Accuracy of an artifact through its own runtime: what a deployed app would score.

Images are prepared exactly as ``model.json`` says (Pillow bilinear resize to the input size,
normalisation unless it is folded into the graph), the runtime's output is turned into class
ids (argmax, or the graph's own class map), and those are resized (nearest) back to the mask.
numpy and Pillow only: it runs on a device without torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.bundle import class_ids, prepare
from edgeseg.errors import EdgesegError
from edgeseg.eval.metrics import confusion_matrix, per_group, summarize


def describe(artifact: Path) -> dict:
    """The ``model.json`` of a bundle; for an edgeseg checkpoint, the same facts from the file."""
    from edgeseg.bundle import SIDECAR, read_sidecar

    path = Path(artifact)
    bundle = path if path.is_dir() else path.parent
    if (bundle / SIDECAR).is_file():
        return read_sidecar(bundle)
    if path.suffix == ".pt":
        from edgeseg.models.builders import model_facts
        from edgeseg.models.checkpoint import load_model

        loaded = load_model(path)
        data = loaded.raw
        return {
            "model": {**model_facts(loaded.model, tuple(data["input_size"])), "macs_at": list(data["input_size"])},
            "input": {
                "size": list(data["input_size"]),
                "dtype": "float32",
                "preprocessing": {"in_graph": False, "mean": data["mean"], "std": data["std"]},
            },
            "output": {"kind": "logits"},
            "classes": {"names": data["class_names"], "palette": data["palette"]},
            "artifact": {"format": "pytorch", "precision": "fp32", "file": path.name},
        }
    raise EdgesegError(
        f"{artifact}: no {SIDECAR} beside it (a bare model file says nothing of its classes or preprocessing); "
        "benchmark a bundle directory from `edgeseg export`, or an edgeseg checkpoint (.pt)"
    )


def predict(run, images: list[np.ndarray], meta: dict) -> list[np.ndarray]:
    """Class ids at each image's own size, one image per call (batch 1, as a camera feed)."""
    out = []
    for image in images:
        ids = class_ids(run(prepare([image], meta)), meta)[0].astype(np.uint8)
        if ids.shape != image.shape[:2]:
            ids = np.asarray(Image.fromarray(ids).resize((image.shape[1], image.shape[0]), Image.NEAREST))
        out.append(ids)
    return out


def score(
    predictions: list[np.ndarray],
    masks: list[np.ndarray],
    class_names: list[str],
    reference: list[np.ndarray] | None = None,
    groups: list[str] | None = None,
) -> dict:
    """mIoU, per-class IoU and pixel accuracy against the masks; pixel agreement with ``reference``;
    with ``groups`` (one per image) the same per group."""
    image_cms = [confusion_matrix(pred, mask, len(class_names)) for pred, mask in zip(predictions, masks, strict=True)]
    summary = summarize(sum(image_cms, np.zeros((len(class_names),) * 2, dtype=np.int64)), class_names)
    result = {
        "images": len(predictions),
        "miou": summary["miou"],
        "pixel_accuracy": summary["pixel_accuracy"],
        "per_class_iou": summary["per_class_iou"],
        "agreement_with_reference": None,
    }
    if groups is not None:
        result["per_group"] = per_group(image_cms, groups, class_names)
    if reference is not None:
        same = sum(int((p == r).sum()) for p, r in zip(predictions, reference, strict=True))
        result["agreement_with_reference"] = round(same / sum(p.size for p in predictions), 6)
    return result


def save_predictions(path: str | Path, predictions: list[np.ndarray]) -> None:
    np.savez_compressed(path, **{str(i): p for i, p in enumerate(predictions)})


def load_predictions(path: str | Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[str(i)] for i in range(len(saved.files))]
