"""Decoding a split into memory: the validation fold carved out of training, fractions, tensors."""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.datasets import DATASETS
from edgeseg.data.samples import Samples
from edgeseg.errors import DataError
from edgeseg.recipe import DataSpec
from edgeseg.registry import lookup


def load_split(spec: DataSpec, split: str, seed: int = 0, *, arrays: bool = False) -> Samples:
    """Decode ``split`` of the recipe's dataset into memory (validated; see ``decode_pairs``).

    ``split`` is a dataset split or ``fold``, the validation fold ``data.validation`` carves out
    of the training split (``edgeseg.data.splits``); ``train`` then excludes it. Images come as
    torch uint8 [3,H,W] tensors, or with ``arrays`` as numpy [H,W,3] arrays (no torch import:
    what ``edgeseg bench`` uses on a device without the training stack).
    ``data.train_fraction`` < 1 keeps a seeded random subset of the training split.
    """
    from edgeseg.data.splits import FOLD

    if spec.root and spec.dataset != "synthetic" and not spec.download and not Path(spec.root).exists():
        raise DataError(f"{spec.root}: data.root does not exist (check the path or the variable it uses)")
    if split == FOLD and spec.validation.kind == "split":
        raise DataError("split 'fold' exists only when data.validation carves one (kind groups, group_fraction...)")
    samples = lookup(DATASETS, spec.dataset, "dataset").load(spec, "train" if split == FOLD else split, seed)
    if split in ("train", FOLD) and spec.validation.kind != "split":
        samples = _carve(spec, samples, seed, fold=split == FOLD)
    if split == "train" and spec.train_fraction < 1:
        samples = _subset(spec, samples, spec.train_fraction, seed)
    return samples if arrays else _as_tensors(samples)


def load_training(spec: DataSpec, seed: int = 0, *, arrays: bool = False) -> Samples:
    """Every image the model is fitted on: ``train``, and ``val`` under ``train_on: train+val``."""
    from edgeseg.data.splits import training_splits

    parts = [load_split(spec, split, seed, arrays=arrays) for split in training_splits(spec)]
    return Samples(
        [x for p in parts for x in p.images],
        [x for p in parts for x in p.masks],
        [x for p in parts for x in p.names],
        [x for p in parts for x in p.skipped],
    )


def _carve(spec: DataSpec, samples: Samples, seed: int, *, fold: bool) -> Samples:
    """The fold's groups (``fold``) or the rest of the training split."""
    from edgeseg.data.splits import fold_groups, group_pattern, groups_of

    groups = groups_of(samples.names, group_pattern(spec), f"{spec.root or spec.dataset}/train")
    if groups is None:
        raise DataError(
            f"data.validation.kind {spec.validation.kind}: dataset '{spec.dataset}' has no built-in groups; "
            "set data.group_pattern (a regex whose capture group is the sequence/patient/camera in each file name)"
        )
    held = fold_groups(spec, groups, seed)
    return _keep(samples, [i for i, g in enumerate(groups) if (g in held) == fold])


def _as_tensors(samples: Samples) -> Samples:
    import torch

    return Samples(
        [torch.from_numpy(image).permute(2, 0, 1).contiguous() for image in samples.images],
        [torch.from_numpy(mask) for mask in samples.masks],
        samples.names,
        samples.skipped,
    )


def _keep(samples: Samples, keep: list[int]) -> Samples:
    return Samples(
        [samples.images[i] for i in keep],
        [samples.masks[i] for i in keep],
        [samples.names[i] for i in keep],
        samples.skipped,
    )


def _subset(spec: DataSpec, samples: Samples, fraction: float, seed: int) -> Samples:
    """``fraction`` of the training images, seeded.

    Where the data has groups (video sequences), each group keeps a contiguous run of its frames
    in name order, from a seeded start: less footage, as a smaller dataset would be. A random
    10% of a video's frames would still show nearly every scene of it (neighbouring frames look
    alike) and overstate how much data the fraction is. Without groups, a seeded random subset.
    """
    import torch

    from edgeseg.data.splits import group_pattern, groups_of

    generator = torch.Generator().manual_seed(seed)
    groups = groups_of(samples.names, group_pattern(spec), f"{spec.root or spec.dataset}/train")
    if groups is None:
        n = max(1, round(len(samples) * fraction))
        return _keep(samples, sorted(torch.randperm(len(samples), generator=generator)[:n].tolist()))
    keep = []
    for group in dict.fromkeys(groups):
        members = sorted((i for i, g in enumerate(groups) if g == group), key=lambda i: samples.names[i])
        n = max(1, round(len(members) * fraction))
        start = int(torch.randint(len(members) - n + 1, (1,), generator=generator))
        keep += members[start : start + n]
    return _keep(samples, sorted(keep))
