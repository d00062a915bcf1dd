"""Datasets: every loader yields decoded, validated uint8 tensors held in memory.

``DATASETS`` maps a recipe's ``data.dataset`` to a loader. ``dataset_info`` gives the class
names, palette and native size without reading any image; ``load_split`` decodes a split.
"""

from __future__ import annotations

from edgeseg.data.datasets import DATASETS, DatasetInfo, dataset_info
from edgeseg.data.loading import load_split, load_training

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_split", "load_training"]
