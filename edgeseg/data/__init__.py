"""Datasets: every loader yields decoded, validated uint8 tensors held in memory.

``DATASETS`` maps a recipe's ``data.dataset`` to a loader. ``dataset_info`` gives the class
names, palette and native size without reading any image; ``load_split`` decodes a split.
Loaded on first use (PEP 562), so ``edgeseg.data.imports``' format table stays light for the CLI.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "DATASETS": "datasets",
    "DatasetInfo": "datasets",
    "dataset_info": "datasets",
    "load_split": "loading",
    "load_training": "loading",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'edgeseg.data' has no attribute '{name}'")
    return getattr(importlib.import_module(f"edgeseg.data.{_HOMES[name]}"), name)
