"""Robustness of an artifact: its mIoU through its own runtime on corrupted evaluation images.

The image set is the first ``max_images`` images of the scored split, in the split's own order
(all of them by default), so every artifact and every run sees the same frames. Each corrupted
copy is made once per ``bench`` call and cached as a file that every artifact's worker process
reads (``corrupted_cache``): all artifacts are scored on identical pixels, and the corruption
cost is paid once, not once per artifact.

Retention is corrupted mIoU / clean mIoU on that image set: 1.0 means the corruption costs
nothing, 0.5 that it halves the score. Per corruption it averages the severities; overall it
averages every (corruption, severity) pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.corruptions import corrupt, image_seed


def corrupted_images(
    images: list[np.ndarray], name: str, severity: int, seed: int, cache: Path | None = None
) -> list[np.ndarray]:
    """``images`` corrupted by ``name`` at ``severity`` (seeded per image), through ``cache``."""
    path = cache / f"{name}-{severity}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as saved:
            if len(saved.files) == len(images):
                return [saved[str(i)] for i in range(len(images))]
    out = [corrupt(img, name, severity, image_seed(seed, name, severity, i)) for i, img in enumerate(images)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.npz")
        np.savez(partial, **{str(i): img for i, img in enumerate(out)})
        os.replace(partial, path)  # a reader never sees half a file
    return out


def robustness(
    run: Callable[[np.ndarray], np.ndarray],
    images: list[np.ndarray],
    masks: list[np.ndarray],
    meta: dict,
    settings: dict,
    clean: list[np.ndarray] | None = None,
    *,
    seed: int = 0,
    cache: Path | None = None,
    on_corruption: Callable[[], None] | None = None,
) -> dict:
    """mIoU of ``run`` (an artifact's session) on clean and corrupted copies of the images.

    Args:
        settings: ``corruptions`` (names), ``severities`` and ``max_images`` (None: all).
        clean: ``run``'s class ids on the uncorrupted ``images``, when already computed (the
            bench's accuracy pass): they are not predicted again.
    """
    from edgeseg.bench.accuracy import predict, score

    classes = list(meta["classes"]["names"])
    count = settings.get("max_images") or len(images)
    images, masks = images[:count], masks[:count]
    clean_ids = clean[:count] if clean is not None else predict(run, images, meta)
    clean_miou = score(clean_ids, masks, classes)["miou"]
    rows = []
    for name in settings["corruptions"]:
        for severity in settings["severities"]:
            corrupted = corrupted_images(images, name, severity, seed, cache)
            rows.append({"corruption": name, "severity": severity, **_scores(run, corrupted, masks, meta, classes)})
        if on_corruption:
            on_corruption()
    return summarise(clean_miou, rows, len(images))


def _scores(run, images, masks, meta, classes) -> dict:
    from edgeseg.bench.accuracy import predict, score

    scored = score(predict(run, images, meta), masks, classes)
    return {"miou": scored["miou"], "per_class_iou": scored["per_class_iou"]}


def summarise(clean_miou: float | None, rows: list[dict], images: int) -> dict:
    """The robustness section of an artifact's accuracy: every (corruption, severity) mIoU, each
    corruption's mean and retention, and the overall mean and retention."""
    corruptions: dict[str, dict] = {}
    for row in rows:
        entry = corruptions.setdefault(row["corruption"], {"by_severity": {}, "per_class_iou": {}})
        entry["by_severity"][str(row["severity"])] = row["miou"]
        entry["per_class_iou"][str(row["severity"])] = row["per_class_iou"]
    for entry in corruptions.values():
        entry["miou"] = _mean(entry["by_severity"].values())
        entry["retention"] = retention(entry["miou"], clean_miou)
    mean = _mean(row["miou"] for row in rows)
    return {
        "images": images,
        "clean_miou": clean_miou,
        "mean_miou": mean,
        "retention": retention(mean, clean_miou),
        "corruptions": corruptions,
    }


def retention(corrupted_miou: float | None, clean_miou: float | None) -> float | None:
    """corrupted / clean mIoU, or None where either is missing or the clean score is 0."""
    if corrupted_miou is None or not clean_miou:
        return None
    return round(corrupted_miou / clean_miou, 4)


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None
