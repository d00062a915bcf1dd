"""Segmentation metrics from a confusion matrix; the ignore index never counts."""

from __future__ import annotations

import math

import torch

from edgeseg.data.samples import IGNORE


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C×C int64 matrix, rows = ground truth, columns = prediction; pixels equal to 255 skipped."""
    valid = target != IGNORE
    index = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def summarize(cm: torch.Tensor, class_names: tuple[str, ...] | list[str]) -> dict:
    """mIoU, pixel accuracy, mean Dice and per-class IoU/Dice, all in percent (0-100).

    A class absent from both ground truth and predictions has no IoU (NaN -> null in JSON) and
    is left out of the means, as in mmsegmentation.
    """
    cm = cm.double()
    tp = cm.diag()
    gt, pred = cm.sum(1), cm.sum(0)
    union = gt + pred - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    dice = torch.where(gt + pred > 0, 2 * tp / (gt + pred).clamp(min=1), torch.full_like(tp, math.nan))
    total = cm.sum()
    return {
        "miou": _pct(iou.nanmean()),
        "pixel_accuracy": _pct(tp.sum() / total) if total > 0 else None,
        "mean_dice": _pct(dice.nanmean()),
        "per_class_iou": {name: _pct(v) for name, v in zip(class_names, iou)},
        "per_class_dice": {name: _pct(v) for name, v in zip(class_names, dice)},
        "pixels": int(total),
    }


def _pct(value: torch.Tensor) -> float | None:
    v = float(value)
    return None if math.isnan(v) else round(100.0 * v, 4)
