"""Checkpoints: written atomically, loadable with ``weights_only=True``, self-describing.

A checkpoint carries the resolved recipe and the label/preprocessing facts, so ``eval``,
``predict``, compression and the exporters rebuild the model from the file alone. Every stage
may import this module; it imports no stage (compressed architectures are replayed by the leaf
``edgeseg.models.replay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from edgeseg._io import write_atomic
from edgeseg.errors import STORAGE_REFUSED, CheckpointError, EdgesegError, StorageError
from edgeseg.recipe import Recipe, recipe_from_dict

FORMAT = "edgeseg.checkpoint/1"


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temp file beside ``path``, fsync, then one os.replace.

    A crash (or a full disk) at any moment leaves the previous file intact.

    Raises:
        StorageError: the disk is full or read-only (exit 9).
        EdgesegError: any other failure to write, naming the file.
    """
    try:
        write_atomic(path, lambda f: torch.save(obj, f))
    except OSError as exc:
        kind = StorageError if exc.errno in STORAGE_REFUSED else EdgesegError
        raise kind(f"{path}: cannot write checkpoint ({exc.strerror or exc}); the previous file is intact") from None


def checkpoint_facts(recipe: Recipe, info, size: tuple[int, int]) -> dict:
    """What eval, predict and the exporters need besides the weights.

    Args:
        recipe: the recipe the model was trained with.
        info: the dataset's ``DatasetInfo`` (class names, palette, native size).
        size: the training crop size (the input size when the recipe and data give none).
    """
    from edgeseg import __version__
    from edgeseg.models.builders import preprocessing

    pre = preprocessing(recipe.model)
    return {
        "format": FORMAT,
        "recipe": recipe.model_dump(mode="json"),
        "class_names": list(info.class_names),
        "palette": [list(c) for c in info.palette],
        "mean": list(pre.mean),
        "std": list(pre.std),
        "input_size": list(recipe.data.image_size or info.native_size or size),
        "versions": {"edgeseg": __version__, "torch": str(torch.__version__)},
    }


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

    @property
    def quantized(self) -> bool:
        """The model carries INT8 quantizers (a quantization step wrote it)."""
        from edgeseg.models.replay import int8_facts

        return int8_facts(self.raw.get("compression")) is not None


def read_checkpoint(path: Path | str) -> dict:
    """The checkpoint's dict, loaded with ``weights_only=True`` (no pickled code runs)."""
    from edgeseg.models.weights import load_tensors

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    data = load_tensors(path, CheckpointError, "checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgeseg checkpoint (expected format {FORMAT})")
    return data


def load_model(path: Path | str) -> LoadedCheckpoint:
    """Rebuild the model of an edgeseg checkpoint in eval mode, weights loaded strictly."""
    from edgeseg.models.builders import build_model
    from edgeseg.models.replay import rebuild
    from edgeseg.models.weights import load_checked

    data = read_checkpoint(path)
    recipe = recipe_from_dict(data["recipe"], source=f"{path} (embedded recipe)")
    model = build_model(recipe.model, len(data["class_names"]), load_pretrained=False)
    if data.get("compression"):  # pruned channels, INT8 quantizers: replayed from JSON facts
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
