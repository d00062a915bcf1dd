"""Segmentation metrics from a confusion matrix; the ignore index never counts.

numpy only (torch CPU tensors are accepted as they are), so a device that benchmarks artifacts
without the training stack scores them with the same code as ``edgeseg eval``.
"""

from __future__ import annotations

import numpy as np

from edgeseg.data.samples import IGNORE


def confusion_matrix(pred, target, num_classes: int) -> np.ndarray:
    """C×C int64 matrix, rows = ground truth, columns = prediction; pixels equal to 255 skipped."""
    pred, target = np.asarray(pred), np.asarray(target)
    valid = target != IGNORE
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes)[: num_classes * num_classes].reshape(
        num_classes, num_classes
    )


def summarize(cm, class_names: tuple[str, ...] | list[str]) -> dict:
    """mIoU, pixel accuracy, mean Dice and per-class IoU/Dice, all in percent (0-100).

    A class absent from both ground truth and predictions has no IoU (NaN -> null in JSON) and
    is left out of the means, as in mmsegmentation.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt, pred = cm.sum(1), cm.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        dice = np.where(gt + pred > 0, 2 * tp / np.maximum(gt + pred, 1), np.nan)
    total = cm.sum()
    return {
        "miou": _pct(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "pixel_accuracy": _pct(tp.sum() / total) if total > 0 else None,
        "mean_dice": _pct(np.nanmean(dice)) if np.isfinite(dice).any() else None,
        "per_class_iou": {name: _pct(v) for name, v in zip(class_names, iou, strict=True)},
        "per_class_dice": {name: _pct(v) for name, v in zip(class_names, dice, strict=True)},
        "pixels": int(total),
    }


def _pct(value) -> float | None:
    v = float(value)
    return None if np.isnan(v) else round(100.0 * v, 4)


def per_group(image_cms: list[np.ndarray], groups: list[str], class_names) -> dict:
    """Group -> images, mIoU, pixel accuracy and per-class IoU, from one confusion matrix per image.

    The scores a user should expect on footage like each group (a sequence, a camera): a mean
    over a split hides a scene where the model fails.
    """
    totals: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for cm, group in zip(image_cms, groups, strict=True):
        totals[group] = totals.get(group, 0) + cm
        counts[group] = counts.get(group, 0) + 1
    out = {}
    for group in sorted(totals):
        summary = summarize(totals[group], class_names)
        out[group] = {
            "images": counts[group],
            "miou": summary["miou"],
            "pixel_accuracy": summary["pixel_accuracy"],
            "per_class_iou": summary["per_class_iou"],
        }
    return out
