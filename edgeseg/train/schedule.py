"""Optimizer, learning-rate schedule and loss built from the recipe's train section."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from edgeseg.data.samples import IGNORE, Samples
from edgeseg.errors import RecipeError
from edgeseg.recipe import TrainSpec


def backbone_stages(model: nn.Module, count: int) -> list[list[tuple[str, nn.Parameter]]]:
    """The backbone's parameters as ``count`` consecutive slices, input side first.

    Slices hold equal numbers of parameter tensors in definition order (the order data flows
    through every backbone edgeseg builds): a depth-wise partition that needs no per-backbone
    table of stage names.
    """
    params = [(n, p) for n, p in model.named_parameters() if n.startswith("backbone.")]
    bounds = [round(i * len(params) / count) for i in range(count + 1)]
    return [params[bounds[i] : bounds[i + 1]] for i in range(count)]


def frozen_stage_count(spec: TrainSpec, epoch: int) -> int:
    """How many backbone stages (from the input) are frozen in ``epoch`` (0-based)."""
    stages = spec.backbone_stages
    if epoch < spec.freeze_backbone_epochs:
        return stages
    if spec.unfreeze_every_epochs:
        return max(spec.frozen_stages, stages - epoch // spec.unfreeze_every_epochs)
    return spec.frozen_stages


def param_groups(model: nn.Module, spec: TrainSpec) -> list[dict]:
    """Backbone at ``lr * backbone_lr_mult``, head at ``lr``; no weight decay on norms and biases.

    With ``layer_lr_decay`` each backbone stage is its own group, stage i from the top at
    ``lr * backbone_lr_mult * layer_lr_decay**i``.
    """
    stage_of = {id(p): i for i, stage in enumerate(backbone_stages(model, spec.backbone_stages)) for _, p in stage}
    groups: dict[tuple[str, bool, int], list] = {}
    for name, param in model.named_parameters():
        part = "backbone" if name.startswith("backbone.") else "head"
        stage = stage_of[id(param)] if part == "backbone" and spec.layer_lr_decay else -1
        groups.setdefault((part, param.ndim > 1, stage), []).append(param)
    out = []
    for (part, decays, stage), params in groups.items():
        lr = spec.lr * (spec.backbone_lr_mult if part == "backbone" else 1.0)
        if stage >= 0:
            lr *= spec.layer_lr_decay ** (spec.backbone_stages - 1 - stage)
        weight_decay = spec.weight_decay if decays else 0.0
        label = part if stage < 0 else f"{part}.{stage}"
        out.append({"params": params, "lr": lr, "weight_decay": weight_decay, "name": label})
    return out


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    groups = param_groups(model, spec)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=spec.lr)


def make_scheduler(
    optimizer, spec: TrainSpec, iters_per_epoch: int, budget_used: Callable[[], float] | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration LR factor: linear warm-up, then poly, cosine or constant decay.

    The decay follows ``train.epochs``. With ``budget_used`` (the fraction of
    ``train.time_budget_min`` spent, 0..1) it follows whichever is further along: a host fast
    enough to finish the epochs in the budget runs the epoch schedule (the same model on every
    such host), a slower one reaches the LR floor exactly when the budget runs out.
    """
    total = max(1, spec.epochs * iters_per_epoch)
    warmup = int(spec.warmup_epochs * iters_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if budget_used is not None:
            progress = max(progress, min(1.0, budget_used()))
        if spec.schedule == "poly":
            return (1 - progress) ** spec.poly_power
        if spec.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def median_frequency_weights(samples: Samples, num_classes: int) -> torch.Tensor:
    """SegNet's median frequency balancing: freq(c) = pixels of c / pixels of images containing c.

    Classes never seen in training get weight 0 (they cannot be learned anyway).
    """
    pixels = torch.zeros(num_classes, dtype=torch.float64)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for mask in samples.masks:
        counts = torch.bincount(mask[mask != IGNORE].long().flatten(), minlength=num_classes)[:num_classes].double()
        pixels += counts
        image_pixels += (counts > 0).double() * float((mask != IGNORE).sum())
    freq = torch.where(image_pixels > 0, pixels / image_pixels.clamp(min=1), torch.zeros_like(pixels))
    median = freq[freq > 0].median()
    return torch.where(freq > 0, median / freq.clamp(min=1e-12), torch.zeros_like(freq)).float()


class CrossEntropyLovasz(nn.Module):
    """Cross-entropy plus ``weight`` x the Lovász-softmax loss (Berman et al., 2018; smp's
    implementation): a surrogate of the Jaccard index itself, so every class present in a batch
    counts the same whatever its pixel count."""

    def __init__(self, cross_entropy: nn.Module, weight: float):
        try:
            from segmentation_models_pytorch.losses import LovaszLoss
        except ImportError:
            raise RecipeError(
                "train.lovasz_weight needs segmentation-models-pytorch: pip install 'edgeseg[train]'"
            ) from None

        super().__init__()
        self.cross_entropy, self.weight = cross_entropy, weight
        self.lovasz = LovaszLoss("multiclass", ignore_index=IGNORE)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.cross_entropy(logits, target) + self.weight * self.lovasz(logits, target)


def make_loss(spec: TrainSpec, class_weights: torch.Tensor | None) -> nn.Module:
    ce = nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE, label_smoothing=spec.label_smoothing)
    return CrossEntropyLovasz(ce, spec.lovasz_weight) if spec.lovasz_weight > 0 else ce
