"""Evaluate a model on a decoded split: predictions at model input size, scored at mask size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeseg.data.samples import Samples
from edgeseg.data.transforms import normalize
from edgeseg.eval.metrics import confusion_matrix, per_group, summarize


@torch.no_grad()
def predict_logits(model, images: torch.Tensor, mean, std, input_size=None) -> torch.Tensor:
    """Logits at the images' own size for a uint8 N×3×H×W batch.

    With ``input_size`` (H, W), the model sees resized images and the logits are resized back.
    """
    size = images.shape[-2:]
    x = normalize(images, mean, std)
    if input_size is not None and tuple(input_size) != tuple(size):
        x = F.interpolate(x, size=tuple(input_size), mode="bilinear", align_corners=False)
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x).float()
    if out.shape[-2:] != size:
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
    return out


@torch.no_grad()
def evaluate_samples(
    model,
    samples: Samples,
    *,
    class_names,
    mean,
    std,
    input_size=None,
    device="cpu",
    batch_size: int = 4,
    indices=None,
    groups: list[str] | None = None,
) -> tuple[np.ndarray, dict]:
    """Confusion matrix and metrics summary of ``model`` over ``samples`` (or a subset).

    Images of different sizes are run one at a time; equal sizes are batched. With ``groups``
    (one per sample) the summary also holds ``per_group`` metrics.
    """
    was_training = model.training
    model.eval()
    num_classes = len(class_names)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    order = list(range(len(samples))) if indices is None else list(indices)
    same_size = len({tuple(samples.images[i].shape) for i in order}) <= 1
    step = batch_size if same_size else 1
    image_cms = []
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        images = torch.stack([samples.images[i] for i in chunk]).to(device)
        masks = torch.stack([samples.masks[i] for i in chunk])
        preds = predict_logits(model, images, mean, std, input_size).argmax(1).cpu().numpy()
        image_cms += [confusion_matrix(p, m, num_classes) for p, m in zip(preds, masks.numpy(), strict=True)]
    model.train(was_training)
    cm = sum(image_cms, np.zeros((num_classes, num_classes), dtype=np.int64))
    summary = summarize(cm, class_names)
    if groups is not None:
        summary["per_group"] = per_group(image_cms, [groups[i] for i in order], class_names)
    return cm, summary


def evaluate_checkpoint(checkpoint, split: str = "val", overrides: tuple[str, ...] | list[str] = ()) -> dict:
    """Metrics of an edgeseg checkpoint on ``split`` of the dataset its recipe names.

    ``overrides`` are ``--set`` strings applied to the embedded recipe (e.g. ``data.root=...``
    when the data has moved since training).
    """
    from edgeseg.data import load_split
    from edgeseg.data.splits import group_pattern, groups_of
    from edgeseg.models.checkpoint import load_model
    from edgeseg.recipe import apply_overrides

    loaded = load_model(checkpoint)
    recipe = apply_overrides(loaded.recipe, overrides, source=f"{checkpoint} (embedded recipe)")
    samples = load_split(recipe.data, split, recipe.seed)
    _, summary = evaluate_samples(
        loaded.model,
        samples,
        class_names=loaded.class_names,
        mean=loaded.mean,
        std=loaded.std,
        input_size=recipe.data.image_size,
        groups=groups_of(samples.names, group_pattern(recipe.data), split),
    )
    return {"checkpoint": str(checkpoint), "split": split, "images": len(samples), **summary}
