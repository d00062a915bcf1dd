"""The ``model:`` section: head, backbone and weights."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from edgeseg.recipe._base import BACKBONE_NAMES, HEAD_NAMES, TORCHVISION_SEG_WEIGHTS, _Strict
from edgeseg.registry import did_you_mean


class ModelSpec(_Strict):
    """Architecture and where its starting weights come from."""

    head: Literal[HEAD_NAMES] = "lraspp"
    backbone: Literal[BACKBONE_NAMES] = "mobilenet_v3_large"
    weights: str | None = None
    backbone_weights: str = "imagenet"
    output_stride: Literal[8, 16, 32] | None = None

    @model_validator(mode="after")
    def _weights_fit(self) -> ModelSpec:
        if self.weights is None:
            return self
        enum_name = self.weights.split(".")[0]
        if enum_name not in TORCHVISION_SEG_WEIGHTS:
            raise ValueError(
                f"model.weights '{self.weights}' is not a torchvision segmentation weights name"
                f"{did_you_mean(enum_name, list(TORCHVISION_SEG_WEIGHTS))}; use one of "
                + ", ".join(f"{k}.DEFAULT" for k in TORCHVISION_SEG_WEIGHTS)
            )
        head, backbone = TORCHVISION_SEG_WEIGHTS[enum_name]
        if (self.head, self.backbone) != (head, backbone):
            raise ValueError(
                f"model.weights {enum_name} fits head '{head}' on backbone '{backbone}', "
                f"not '{self.head}' on '{self.backbone}'"
            )
        return self
