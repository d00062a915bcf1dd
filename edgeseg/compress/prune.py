"""Structured channel pruning with torch-pruning's DepGraph: channels removed for real.

DepGraph traces the model once and groups every tensor dimension that must shrink together
(a conv's outputs, its BatchNorm, the next conv's inputs, both sides of a residual add, the
LRASPP head's gating multiply), so a pruned model is a smaller dense model that every runtime
runs faster, unlike masked weights.

A pruned checkpoint stores its *channel plan* (the changed shape attributes of each module) as
JSON next to the weights; :func:`edgeseg.models.replay.apply_channel_plan` reshapes a freshly built model to it before
the weights are loaded. No pickled modules.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import torch
from torch import nn

from edgeseg.registry import did_you_mean, lookup

log = logging.getLogger(__name__)


def _importance(name: str):
    import torch_pruning as tp

    registry: dict[str, Callable[[], object]] = {
        "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
        "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
        "taylor": lambda: tp.importance.GroupTaylorImportance(),
        "lamp": lambda: tp.importance.LAMPImportance(p=2),
        "bn_scale": lambda: tp.importance.BNScaleImportance(),
        "fpgm": lambda: tp.importance.FPGMImportance(p=2),
        "random": lambda: tp.importance.RandomImportance(),
    }
    return lookup(registry, name, "pruning importance")()


def protected_layers(model: nn.Module, num_classes: int, names: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The head's classifier convs (one output per class) plus the modules the recipe names.

    Raises:
        KeyError: a named module the model does not have.
    """
    head = getattr(model, "classifier", None)
    found = [
        f"classifier.{n}" if n else "classifier"
        for n, m in (head.named_modules() if head is not None else ())
        if isinstance(m, nn.Conv2d) and m.out_channels == num_classes
    ]
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            raise KeyError(
                f"no module '{name}' in the model{did_you_mean(name, list(modules))}; e.g. {', '.join(found[:2])}"
            )
    return found + [n for n in names if n not in found]


def make_pruner(
    model: nn.Module,
    example: torch.Tensor,
    *,
    ratio: float,
    importance: str,
    protected: list[str],
    round_to: int,
    global_pruning: bool,
    iterative_steps: int = 1,
):
    """torch-pruning's MetaPruner; ``protected`` are module names, looked up in this ``model``."""
    import torch_pruning as tp

    return tp.pruner.MetaPruner(
        model,
        example,
        importance=_importance(importance),
        pruning_ratio=ratio,
        iterative_steps=iterative_steps,
        ignored_layers=[model.get_submodule(n) for n in protected],
        round_to=round_to,
        global_pruning=global_pruning,
    )


def count_macs(model: nn.Module, example: torch.Tensor) -> float:
    import torch_pruning as tp

    macs, _ = tp.utils.count_ops_and_params(model.eval(), example)
    return float(macs)


def ratio_for_macs(
    model: nn.Module, example: torch.Tensor, keep: float, *, steps: int = 12, **pruner_args
) -> tuple[float, float]:
    """Bisect the per-layer channel ratio whose pruned copy keeps at most ``keep`` of the MACs.

    Returns:
        (ratio, the fraction of MACs that ratio keeps).
    """
    full = count_macs(model, example)
    low, high, best = 0.0, 0.95, (0.95, None)
    for _ in range(steps):
        ratio = (low + high) / 2
        trial = copy.deepcopy(model)
        make_pruner(trial, example, ratio=ratio, **pruner_args).step()
        kept = count_macs(trial, example) / full
        if kept <= keep:
            high, best = ratio, (ratio, kept)
        else:
            low = ratio
    if best[1] is None:  # even 0.95 keeps too much: the protected layers dominate
        trial = copy.deepcopy(model)
        make_pruner(trial, example, ratio=0.95, **pruner_args).step()
        best = (0.95, count_macs(trial, example) / full)
    return best


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` (a cumulative average).

    Removing a layer's input channels shifts its output distribution, so the old statistics no
    longer fit. On CamVid, LRASPP-EfficientNet-Lite0 at half the MACs scores 55 mIoU with fresh
    statistics and 21 without, before any fine-tuning. Returns the number of BatchNorms.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    was_training = model.training
    model.train()
    for x in batches:
        model(x)
    model.train(was_training)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return len(norms)


def taylor_gradients(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], criterion) -> None:
    """Accumulate task-loss gradients: what Taylor importance ranks channels by."""
    model.zero_grad(set_to_none=True)
    model.eval()
    for x, target in batches:
        criterion(model(x), target).backward()
