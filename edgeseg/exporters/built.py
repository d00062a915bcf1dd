"""What an exporter's builder returns (a leaf: every builder and the ONNX helpers import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Built:
    """What a builder produced: the artifact file, its PyTorch reference, facts for model.json."""

    file: str
    reference: torch.nn.Module
    reference_kind: str
    facts: dict = field(default_factory=dict)
    io: dict = field(default_factory=dict)  # model.json "input"/"output" entries this format changes
