"""Checkpoints: written atomically, loadable with ``weights_only=True``, self-describing.

A checkpoint carries the resolved recipe and the label/preprocessing facts, so ``eval``,
``predict`` and the exporters rebuild the model from the file alone.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeseg.errors import CheckpointError, EdgesegError, StorageError
from edgeseg.recipe import Recipe, recipe_from_dict

FORMAT = "edgeseg.checkpoint/1"


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temp file beside ``path``, fsync, then one os.replace.

    A crash (or a full disk) at any moment leaves the previous file intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            kind = StorageError if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else EdgesegError
            raise kind(f"{path}: cannot write checkpoint ({exc.strerror or exc}); the previous file is intact") from None
        raise


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint plus what is needed to feed and read it."""

    model: torch.nn.Module
    recipe: Recipe
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    raw: dict


def read_checkpoint(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgeseg checkpoint (expected format {FORMAT})")
    return data


def load_model(path: Path | str) -> LoadedCheckpoint:
    """Rebuild the model of an edgeseg checkpoint in eval mode, weights loaded strictly."""
    from edgeseg.models import build_model
    from edgeseg.models.weights import load_checked

    data = read_checkpoint(path)
    recipe = recipe_from_dict(data["recipe"], source=f"{path} (embedded recipe)")
    model = build_model(recipe.model, len(data["class_names"]), load_pretrained=False)
    if data.get("compression"):  # pruned channels, INT8 quantizers: replayed from JSON facts
        from edgeseg.compress import rebuild

        model = rebuild(model.eval(), data["compression"], tuple(data["input_size"]), str(path))
    load_checked(model, data["model"], str(path))
    model.eval()
    return LoadedCheckpoint(
        model=model,
        recipe=recipe,
        class_names=tuple(data["class_names"]),
        palette=tuple(tuple(c) for c in data["palette"]),
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
        input_size=tuple(data["input_size"]),
        raw=data,
    )
