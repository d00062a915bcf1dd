"""Unstructured magnitude sparsity with ``nncf.prune``: zeros in the weights, every channel kept.

What it buys: weights that compress (a zipped artifact shrinks with the sparsity) and kernels
that exploit sparsity can skip the zeros. What it does not buy: any speed-up on the dense
convolution kernels ONNX Runtime, OpenVINO and TensorRT run by default, because a zero costs
as much as any other weight there. The step's report says so next to its figures.
"""

from __future__ import annotations

import gzip
import io

import torch
from torch import nn

NO_SPEEDUP = "unstructured: smaller compressed files, no speed-up on dense CPU/GPU kernels"


def sparsify(model: nn.Module, ratio: float, scope: str, example: torch.Tensor) -> nn.Module:
    """Magnitude masks on every conv/linear weight (global or per-layer ranking)."""
    import nncf

    from edgeseg.console import route_nncf_output

    route_nncf_output()
    mode = (
        nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL
        if scope == "global"
        else nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_LOCAL
    )
    return nncf.prune(model, mode, ratio=ratio, examples_inputs=example)


def bake_masks(masked: nn.Module) -> nn.Module:
    """Multiply the masks into the weights and drop NNCF's hooks: a plain module with zeros."""
    import nncf

    plain = nncf.strip(masked, strip_format=nncf.StripFormat.IN_PLACE)
    for p in plain.parameters():  # in-place strip freezes the weights it touched
        p.requires_grad_(True)
    return plain


def weight_sparsity(model: nn.Module) -> float:
    weights = [p.detach().flatten() for p in model.parameters() if p.dim() > 1]
    total = sum(w.numel() for w in weights)
    return float(sum((w == 0).sum() for w in weights)) / max(total, 1)


def gzip_mb(model: nn.Module) -> float:
    """Size of the float32 weights after gzip: what sparsity saves in a zipped download."""
    buffer = io.BytesIO()
    torch.save({k: v for k, v in model.state_dict().items() if v.is_floating_point()}, buffer)
    return len(gzip.compress(buffer.getvalue(), compresslevel=6)) / 1e6


def keep_zeros(model: nn.Module) -> list:
    """Zero the gradient wherever a weight is exactly zero, so later fine-tuning stays sparse.

    With zero gradients, AdamW's moments stay zero and decoupled weight decay scales 0 to 0, so
    the weight does not move. Returns the hook handles (remove them when training ends).
    """
    handles = []
    for p in model.parameters():
        if p.dim() > 1 and p.requires_grad and bool((p == 0).any()):
            mask = (p.detach() != 0).to(p.dtype)
            handles.append(p.register_hook(lambda grad, mask=mask: grad * mask))
    return handles
