"""Which images train, which select, which score: groups, validation folds and ``train_on``.

Video-derived datasets hold runs of near-identical frames. A validation split cut from the same
sequences as the training split measures memory of those scenes, not generalisation: CamVid's
val is 101 frames of a sequence that also gives 204 of the 367 training frames. A *group* (a
sequence, a patient, a camera) is read from each file name with ``data.group_pattern``;
``data.validation`` can then hold out whole groups of the training split as the ``fold``.

Split names (``edgeseg.recipe.SPLIT_NAMES``): ``train`` is the dataset's training split less the
fold; ``fold`` is the held-out groups; ``val`` and ``test`` are the dataset's own. What the model
fits on is ``training_splits`` (``train``, plus ``val`` under ``train_on: train+val``); what
selects it is ``selection_split``. numpy/stdlib only: the torch-free bench resolves splits too.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from edgeseg.errors import DataError
from edgeseg.recipe import DataSpec
from edgeseg.registry import did_you_mean

FOLD = "fold"


def selection_split(spec: DataSpec) -> str:
    """The split that picks the epoch, stops training early and scores compression steps."""
    return "val" if spec.validation.kind == "split" else FOLD


def training_splits(spec: DataSpec) -> tuple[str, ...]:
    """The splits the model is fitted on."""
    return ("train", "val") if spec.train_on == "train+val" else ("train",)


def group_pattern(spec: DataSpec) -> str | None:
    """``data.group_pattern``, else the dataset's built-in one (CamVid's sequence prefix), else None."""
    if spec.group_pattern:
        return spec.group_pattern
    from edgeseg.data.datasets import dataset_info

    return dataset_info(spec).group_pattern


def groups_of(names: list[str], pattern: str | None, what: str) -> list[str] | None:
    """The group of each file name (its stem), or None when the data has no group pattern.

    Raises:
        DataError: a name the pattern does not match, naming the file and the field.
    """
    if pattern is None:
        return None
    regex = re.compile(pattern)
    out = []
    for name in names:
        match = regex.search(name)
        if match is None or not match.group(1):
            raise DataError(
                f"{what}: file {name!r} does not match data.group_pattern {pattern!r} "
                "(fix the pattern so every file name yields its group)"
            )
        out.append(match.group(1))
    return out


def fold_groups(spec: DataSpec, groups: list[str], seed: int) -> set[str]:
    """The groups of the training split that ``data.validation`` holds out as the fold."""
    v = spec.validation
    sizes = Counter(groups)
    if len(sizes) < 2:
        raise DataError(
            f"data.validation.kind {v.kind}: the training split has {len(sizes)} group(s); a group-disjoint "
            "fold needs at least two (check data.group_pattern, or use kind: split)"
        )
    if v.kind == "groups":
        unknown = [g for g in v.groups if g not in sizes]
        if unknown:
            raise DataError(
                f"data.validation.groups: {unknown[0]!r} is not a group of the training split"
                f"{did_you_mean(unknown[0], sorted(sizes))}; groups: {', '.join(sorted(sizes))}"
            )
        held = set(v.groups)
        if held == set(sizes):
            raise DataError("data.validation.groups holds out every group: leave at least one to train on")
        return held
    if v.kind == "group_fraction":
        return _fraction_of_groups(sizes, v.fraction, seed)
    if v.folds > len(sizes):
        raise DataError(
            f"data.validation.folds: {v.folds} folds need at least as many groups; the training split has {len(sizes)}"
        )
    return _kfold_groups(sizes, v.folds)[v.fold]


def _fraction_of_groups(sizes: Counter, fraction: float, seed: int) -> set[str]:
    """Groups in a seeded order, each taken when it brings the fold nearer ``fraction`` of the
    images (at least one group held out, at least one left to train on)."""
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    target = fraction * sum(sizes.values())
    held: set[str] = set()
    count = 0
    for group in order:
        if len(held) == len(sizes) - 1:
            break
        if abs(count + sizes[group] - target) < abs(count - target):
            held.add(group)
            count += sizes[group]
    return held or {min(order, key=lambda g: sizes[g])}


def _kfold_groups(sizes: Counter, folds: int) -> list[set[str]]:
    """Largest group first into the fold with the fewest images: scikit-learn's GroupKFold
    assignment, written out so the torch-free bench install needs no scikit-learn."""
    assigned: list[set[str]] = [set() for _ in range(folds)]
    load = [0] * folds
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        lightest = load.index(min(load))
        assigned[lightest].add(group)
        load[lightest] += sizes[group]
    return assigned
