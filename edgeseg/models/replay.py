"""Replay of compression transforms: how a checkpoint's JSON facts rebuild its architecture.

A compressed checkpoint stores, in order, what was done to the recipe's architecture: a channel
plan for pruning, NNCF's JSON config for INT8 (never a pickle). ``rebuild`` replays them on a
freshly built model before its weights are loaded. This module is a leaf: it imports no stage,
so ``edgeseg.models.checkpoint`` (which every stage may import) can use it, and compression builds on it.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import CheckpointError

log = logging.getLogger(__name__)


def transforms_of(compression) -> list[dict]:
    """A checkpoint's ``compression`` entry as a list (edgeseg 0.1 wrote one dict)."""
    if not compression:
        return []
    return [compression] if isinstance(compression, dict) else list(compression)


def int8_facts(compression) -> dict | None:
    """The INT8 entry of a checkpoint's compression, if it was quantized."""
    return next((t for t in transforms_of(compression) if t["kind"] == "nncf-int8"), None)


def rebuild(model: torch.nn.Module, compression, input_size: tuple[int, int], source: str) -> torch.nn.Module:
    """The recipe's architecture -> the compressed one, replaying each transform (weights after)."""
    for entry in transforms_of(compression):
        if entry["kind"] == "pruned":
            apply_channel_plan(model, entry["channels"], source)
        elif entry["kind"] == "nncf-int8":
            model = rebuild_quantized(model.eval(), entry, input_size)
        elif entry["kind"] != "sparse":  # sparse: the zeros are in the weights, nothing to rebuild
            raise CheckpointError(
                f"{source}: an intermediate training state ({entry['kind']}), not a model; "
                "use the compress stage's model.pt"
            )
    return model


# ---------------------------------------------------------------------------------------------
# Pruning: channel plans

# Attributes that define a layer's shape; ``groups`` matters for the forward pass itself.
_SHAPE_ATTRS = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.BatchNorm2d: ("num_features",),
    nn.Linear: ("in_features", "out_features"),
}


def channel_plan(pruned: nn.Module, original: nn.Module) -> dict[str, dict[str, int]]:
    """The shape attributes that pruning changed, module by module (JSON)."""
    before = dict(original.named_modules())
    plan = {}
    for name, module in pruned.named_modules():
        attrs = next((a for t, a in _SHAPE_ATTRS.items() if isinstance(module, t)), ())
        changed = {a: int(getattr(module, a)) for a in attrs if getattr(module, a) != getattr(before[name], a)}
        if changed:
            plan[name] = changed
    return plan


def apply_channel_plan(model: nn.Module, plan: dict[str, dict[str, int]], source: str = "channel plan") -> nn.Module:
    """Reshape a freshly built model to ``plan`` (weights uninitialised: load them next).

    Raises:
        CheckpointError: the plan names a module this architecture lacks.
    """
    modules = dict(model.named_modules())
    for name, attrs in plan.items():
        if name not in modules:
            raise CheckpointError(f"{source}: its channel plan names module '{name}', which this architecture lacks")
        module = modules[name]
        for attr, value in attrs.items():
            setattr(module, attr, value)
        _resize(module)
    return model


def _resize(module: nn.Module) -> None:
    def fresh(tensor: torch.Tensor | None, shape: tuple[int, ...]):
        if tensor is None:
            return None
        new = torch.empty(shape, dtype=tensor.dtype)
        return nn.Parameter(new, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else new

    if isinstance(module, nn.Conv2d):
        module.weight = fresh(
            module.weight, (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        )
        module.bias = fresh(module.bias, (module.out_channels,))
    elif isinstance(module, nn.BatchNorm2d):
        n = module.num_features
        module.weight, module.bias = fresh(module.weight, (n,)), fresh(module.bias, (n,))
        module.running_mean, module.running_var = fresh(module.running_mean, (n,)), fresh(module.running_var, (n,))
    elif isinstance(module, nn.Linear):
        module.weight = fresh(module.weight, (module.out_features, module.in_features))
        module.bias = fresh(module.bias, (module.out_features,))


# ---------------------------------------------------------------------------------------------
# INT8: the graph preparation NNCF's config was recorded on


class DecomposedHardswish(nn.Module):
    """HardSwish written as x * relu6(x + 3) / 6: the same function, quantizable pieces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) * (1.0 / 6.0)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module:
    # timm's BatchNormAct2d carries its activation: keep that, drop only the normalisation.
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if act is None:
        return nn.Identity()
    return nn.Sequential(drop, act) if drop is not None and not isinstance(drop, nn.Identity) else act


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every BatchNorm that directly follows a Conv2d into it, in place (eval mode).

    Pairs are found by running ``example`` and matching tensors, so any architecture works
    without tracing. Returns the number of folded pairs.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    model.eval()
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(lambda m, i, o: produced.__setitem__(id(o), m)))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(
                module.register_forward_pre_hook(
                    lambda m, i: pairs.append((produced[id(i[0])], m)) if id(i[0]) in produced else None
                )
            )
    model(example)
    for hook in hooks:
        hook.remove()
    names = {id(m): n for n, m in model.named_modules()}
    for conv, bn in pairs:
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        conv.weight, conv.bias = weight, bias
        _replace(model, names[id(bn)], _bn_replacement(bn))
    return len(pairs)


def decompose_hardswish(model: nn.Module) -> int:
    found = [name for name, m in model.named_modules() if isinstance(m, nn.Hardswish)]
    for name in found:
        _replace(model, name, DecomposedHardswish())
    return len(found)


def prepare_for_int8(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with BN folded and HardSwish decomposed; outputs unchanged (fp32)."""
    prepared = copy.deepcopy(model).eval()
    folded = fold_batchnorm(prepared, example)
    decomposed = decompose_hardswish(prepared)
    log.info("int8 preparation: %d BatchNorms folded, %d HardSwish decomposed", folded, decomposed)
    return prepared


def rebuild_quantized(model: nn.Module, facts: dict, input_size: tuple[int, int]) -> nn.Module:
    """The fp32 architecture -> the same quantized module structure (weights loaded after)."""
    import nncf.torch

    prepared = prepare_for_int8(model, torch.zeros(1, 3, *input_size))
    return nncf.torch.load_from_config(prepared, facts["nncf_config"])
