"""The module that gets exported: the trained model plus optional in-graph pre/post-processing."""

from __future__ import annotations

import torch
from torch import nn


class DeployModel(nn.Module):
    """Wraps a segmentation model for deployment.

    With ``fold_preprocessing`` the graph takes uint8 RGB NCHW and normalises inside (an app
    hands over camera pixels as they are). With ``output="class_map"`` it returns N×H×W uint8
    class ids instead of N×C×H×W float logits: C×4 times less to copy off an accelerator, and
    what a mobile app draws.
    """

    def __init__(self, model: nn.Module, mean, std, *, fold_preprocessing: bool = False, output: str = "logits"):
        super().__init__()
        self.model = model
        self.fold_preprocessing = fold_preprocessing
        self.class_map = output == "class_map"
        self.register_buffer("mean255", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("inv_std255", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_preprocessing:
            x = (x.float() - self.mean255) * self.inv_std255
        y = self.model(x)
        if self.class_map:
            y = y.argmax(1).to(torch.uint8)
        return y
