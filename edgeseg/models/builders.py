"""Segmentation models: a head (``HEADS``) on a backbone (``BACKBONES``), returning N×C×H×W logits.

``build_model`` resolves the recipe's weights: a torchvision segmentation checkpoint
(``model.weights``, through the torch hub cache; the classifier is re-initialised when the
class count differs) or ImageNet / file backbone weights (``model.backbone_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import RecipeError, WeightsError
from edgeseg.models.backbones import BACKBONES, BackboneEntry, Taps
from edgeseg.models.weights import load_checked, torchvision_state
from edgeseg.recipe import ModelSpec
from edgeseg.registry import lookup


def logits_size(x: torch.Tensor, output_stride: int) -> tuple[int, int]:
    """Where a head's logits are resized to: the input's size, or 1/``output_stride`` of it
    (``export.output_stride``: the app takes class ids there and upsamples the ids)."""
    height, width = x.shape[-2:]
    return (height, width) if output_stride == 1 else (height // output_stride, width // output_stride)


class LRASPPModel(nn.Module):
    """Lite R-ASPP (Searching for MobileNetV3): low-level detail plus a gated high-level branch."""

    uses_fine_tap = False
    output_stride = 1  # an export sets it on its own copy (export.output_stride)

    def __init__(self, taps: Taps, num_classes: int, inter_channels: int = 128):
        from torchvision.models.segmentation.lraspp import LRASPPHead

        super().__init__()
        self.backbone = taps.module
        self.classifier = LRASPPHead(taps.low_channels, taps.high_channels, num_classes, inter_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(self.backbone(x))
        return F.interpolate(out, size=logits_size(x, self.output_stride), mode="bilinear", align_corners=False)


class DeepLabV3Model(nn.Module):
    """DeepLabV3: atrous spatial pyramid pooling on the high-level features."""

    uses_fine_tap = False
    output_stride = 1

    def __init__(self, taps: Taps, num_classes: int):
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead

        super().__init__()
        self.backbone = taps.module
        self.classifier = DeepLabHead(taps.high_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(self.backbone(x)["high"])
        return F.interpolate(out, size=logits_size(x, self.output_stride), mode="bilinear", align_corners=False)


class DeepLabV3PlusModel(nn.Module):
    """DeepLabV3+ (Chen et al., 2018): separable ASPP on the high-level features, fused with
    stride-4 detail, for thin classes (poles, signs, people) that OS8 heads blur.

    The modules are segmentation_models_pytorch's decoder's. Its forward upsamples the ASPP map
    by a fixed 4x, which needs inputs divisible by 16 (CamVid's 360 is not); this one resizes to
    the stride-4 map's size instead.
    """

    uses_fine_tap = True
    output_stride = 1

    def __init__(self, taps: Taps, num_classes: int, channels: int = 128):
        try:
            from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
        except ImportError:
            raise RecipeError(
                "model.head deeplabv3plus needs segmentation-models-pytorch: pip install 'edgeseg[train]'"
            ) from None

        super().__init__()
        self.backbone = taps.module
        # Only the first stride-4 entry and the last are read by the decoder.
        encoder_channels = (3, 0, taps.fine_channels, taps.low_channels, taps.high_channels)
        self.decoder = DeepLabV3PlusDecoder(encoder_channels, 4, channels, (12, 24, 36), 16, True, 0.1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        context = self.decoder.aspp(features["high"])
        detail = self.decoder.block1(features["fine"])
        context = F.interpolate(context, size=detail.shape[-2:], mode="bilinear", align_corners=False)
        out = self.classifier(self.decoder.block2(torch.cat([context, detail], dim=1)))
        return F.interpolate(out, size=logits_size(x, self.output_stride), mode="bilinear", align_corners=False)


HEADS: dict[str, type[nn.Module]] = {
    "lraspp": LRASPPModel,
    "deeplabv3": DeepLabV3Model,
    "deeplabv3plus": DeepLabV3PlusModel,
}


@dataclass(frozen=True)
class Preprocessing:
    """What an input image needs before the model: RGB, [0,1], then (x - mean) / std."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocessing(spec: ModelSpec) -> Preprocessing:
    entry: BackboneEntry = lookup(BACKBONES, spec.backbone, "backbone")
    return Preprocessing(entry.mean, entry.std)


def output_stride(spec: ModelSpec) -> int:
    """The recipe's output stride, or the backbone's default (torchvision's choice)."""
    entry = lookup(BACKBONES, spec.backbone, "backbone")
    if spec.output_stride is None:
        return 8 if (spec.backbone == "resnet50" and spec.head == "deeplabv3") else entry.output_strides[0]
    if spec.output_stride not in entry.output_strides:
        raise RecipeError(
            f"model.output_stride: {spec.output_stride} is not supported by backbone '{spec.backbone}' "
            f"(supported: {', '.join(map(str, entry.output_strides))})"
        )
    return spec.output_stride


def build_model(spec: ModelSpec, num_classes: int, *, load_pretrained: bool = True) -> nn.Module:
    """The model of ``spec`` with ``num_classes`` outputs.

    Args:
        spec: the recipe's model section.
        num_classes: output channels.
        load_pretrained: False builds the bare architecture (e.g. before loading a checkpoint).

    Raises:
        WeightsError: weights unavailable or not fitting the architecture.
        RecipeError: an unsupported output stride.
    """
    entry = lookup(BACKBONES, spec.backbone, "backbone")
    head = lookup(HEADS, spec.head, "head")
    backbone_weights = spec.backbone_weights if (load_pretrained and spec.weights is None) else "none"
    model = head(entry.build(backbone_weights, output_stride(spec), head.uses_fine_tap), num_classes)
    if load_pretrained and spec.weights is not None:
        _load_torchvision_segmentation(model, spec.weights)
    return model


def _load_torchvision_segmentation(model: nn.Module, name: str) -> None:
    """Load a torchvision segmentation checkpoint (downloaded into / read from the hub cache).

    The auxiliary classifier is dropped (edgeseg trains without it); classifier tensors whose
    shape differs (another class count) keep their fresh initialisation.
    """
    from torchvision.models import get_weight

    full = name if "." in name else f"{name}.DEFAULT"
    try:
        weights = get_weight(full)
    except (KeyError, ValueError):
        raise RecipeError(f"model.weights: torchvision has no weights named {full!r}") from None
    state = torchvision_state(weights, "model.weights")
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    reinit = [k for k, v in state.items() if k.startswith("classifier.") and k in own and v.shape != own[k].shape]
    for key in reinit:
        state[key] = own[key]
    load_checked(model, state, f"torchvision weights {full}")


def model_facts(model: torch.nn.Module, input_size: tuple[int, int]) -> dict:
    """Parameters and multiply-accumulates at the input size (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_size))
    return {"params_m": round(params / 1e6, 4), "gmacs": round(counter.get_total_flops() / 2e9, 4)}


__all__ = [
    "BACKBONES",
    "HEADS",
    "build_model",
    "preprocessing",
    "output_stride",
    "Preprocessing",
    "WeightsError",
    "model_facts",
]
