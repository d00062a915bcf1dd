"""Evaluation: metrics from a confusion matrix, and the loop that scores a model on a split.

``metrics`` is numpy only, so ``edgeseg bench`` scores artifacts with it on devices without
torch; the PyTorch loop (``evaluate``) is imported on first use of the names below.
"""

from __future__ import annotations

_TORCH_FUNCTIONS = ("evaluate_checkpoint", "evaluate_samples", "predict_logits")


def __getattr__(name: str):
    if name in _TORCH_FUNCTIONS:
        from edgeseg.eval import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'edgeseg.eval' has no attribute '{name}'")
