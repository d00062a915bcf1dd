"""Names and limits every recipe section shares (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edgeseg.limits import limit

DATASET_NAMES = ("synthetic", "camvid", "folder", "voc", "cityscapes", "import")
# `dataset: import`'s formats: the keys of edgeseg.data.imports.IMPORT_FORMATS (a test holds them equal)
IMPORT_FORMAT_NAMES = ("cvat-mask", "coco", "cityscapes", "labelme", "yolo-seg", "voc", "label-studio")

BACKBONE_NAMES = (
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "resnet50",
    "mobilenet_v2",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
)

HEAD_NAMES = ("lraspp", "deeplabv3", "deeplabv3plus")

# torchvision segmentation weight enums and the architecture each one fits.
TORCHVISION_SEG_WEIGHTS = {
    "LRASPP_MobileNet_V3_Large_Weights": ("lraspp", "mobilenet_v3_large"),
    "DeepLabV3_MobileNet_V3_Large_Weights": ("deeplabv3", "mobilenet_v3_large"),
    "DeepLabV3_ResNet50_Weights": ("deeplabv3", "resnet50"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The backbones see features at 1/32 of the input: a side below 32 pixels leaves them nothing.
MIN_SIDE = 32

# Masks are uint8 with 255 as the ignore value: at most 255 classes (ids 0..254).
MAX_CLASSES = 255


# The largest side a recipe may ask for (edgeseg.limits): [100000, 100000] would pass the
# schema and then try to allocate 120 GB in training.
MAX_SIDE = limit("size_side")

# Names become directory names.
MAX_NAME = limit("name_chars")


def _side_in_range(size: tuple[int, int]) -> tuple[int, int]:
    if min(size) < MIN_SIDE:
        raise ValueError(
            f"[H, W] must be at least {MIN_SIDE} pixels each (the backbones see the input at 1/32), got {list(size)}"
        )
    if max(size) > MAX_SIDE:
        raise ValueError(f"[H, W] must be at most {MAX_SIDE} pixels each (limit size_side), got {list(size)}")
    return size


Size = Annotated[tuple[int, int], AfterValidator(_side_in_range)]

Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]

Channel = Annotated[int, Field(ge=0, le=255)]
