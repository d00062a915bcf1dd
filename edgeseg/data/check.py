"""The build's first stage: decode every split a build reads, once, before hours of training.

Two fingerprints serve the cache. ``source_fingerprint`` is cheap (paths, sizes and mtimes under
``data.root``) and keys the check itself, so an untouched dataset is not decoded again.
``check_data`` hashes the *decoded* pixels and labels; training depends on that report, so a
touched-but-identical file reruns the check and nothing after it, while one changed pixel
retrains.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

import numpy as np

from edgeseg._io import folder_fingerprint
from edgeseg.data import dataset_info, load_split
from edgeseg.data.samples import IGNORE
from edgeseg.data.splits import group_pattern, groups_of, selection_split, training_splits
from edgeseg.errors import GateError
from edgeseg.recipe import DataSpec

log = logging.getLogger(__name__)


def source_fingerprint(spec: DataSpec) -> dict:
    """What is on disk under ``data.root``: file count, bytes and a hash of (path, size, mtime).

    Hidden files and folders are skipped (editor and OS droppings). A missing root is
    fingerprinted as missing; the check itself then says so.
    """
    if spec.dataset == "synthetic" or not spec.root:
        return {}
    return folder_fingerprint(spec.root)


def splits_read(recipe) -> list[str]:
    """Every split a build of ``recipe`` reads: training, selection, evaluation."""
    return list(dict.fromkeys([*training_splits(recipe.data), selection_split(recipe.data), *recipe.eval.splits]))


def held_out_splits(recipe) -> list[str]:
    """Splits that select or score the model and are not trained on: each is checked for leaks."""
    used = [selection_split(recipe.data), *recipe.eval.splits]
    return [s for s in dict.fromkeys(used) if s not in training_splits(recipe.data)]


def recipe_data_report(recipe, decoded: dict | None = None) -> dict:
    """What the build's data stage writes to data.json (and ``edgeseg data check`` prints): every
    split described, and each held-out split's overlap with training. ``decoded`` (filled here)
    keeps the decoded splits, each decoded once."""
    decoded = {} if decoded is None else decoded
    report = check_data(recipe.data, splits_read(recipe), recipe.seed, decoded)
    report["training_splits"] = list(training_splits(recipe.data))
    report["selection_split"] = selection_split(recipe.data)
    report["overlap"] = check_overlap(recipe.data, held_out_splits(recipe), recipe.seed, decoded)
    return report


def check_data(spec: DataSpec, splits: list[str], seed: int, decoded: dict | None = None) -> dict:
    """Decode and validate ``splits``; return what each holds, with a hash of its content.

    Raises:
        DataError: the dataset (or a split of it) cannot be found (exit 4).
        CorruptDataError: a sample does not decode or its mask is invalid (exit 10), unless
            ``data.on_bad_sample: skip``, which lists it under ``skipped`` instead.
    """
    info = dataset_info(spec)
    report = {"dataset": spec.dataset, "num_classes": info.num_classes, "splits": {}}
    for split in splits:
        samples = _decoded(spec, split, seed, decoded)
        report["splits"][split] = _describe(samples, info.class_names)
        absent = report["splits"][split]["absent_classes"]
        if absent:
            log.warning("data %s: no labelled pixel of %s", split, ", ".join(absent))
    return report


def _describe(samples, class_names: tuple[str, ...]) -> dict:
    digest = hashlib.sha256()
    pixels = np.zeros(256, dtype=np.int64)
    images_with = np.zeros(256, dtype=np.int64)
    sizes: Counter[str] = Counter()
    for name, image, mask in zip(samples.names, samples.images, samples.masks, strict=True):
        digest.update(f"{name}\0{image.shape}\0".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(np.ascontiguousarray(mask).tobytes())
        counts = np.bincount(mask.ravel(), minlength=256)
        pixels += counts
        images_with += counts > 0
        sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
    total = int(pixels.sum())
    counts = pixels[: len(class_names)]
    return {
        "samples": len(samples),
        "skipped": samples.skipped,
        "sizes_wxh": dict(sizes.most_common()),
        "class_pixel_fraction": {n: round(int(c) / total, 6) for n, c in zip(class_names, counts, strict=True)},
        "class_image_count": {n: int(c) for n, c in zip(class_names, images_with, strict=False)},
        "ignored_pixel_fraction": round(int(pixels[IGNORE]) / total, 6),
        "absent_classes": [n for n, c in zip(class_names, counts, strict=True) if c == 0],
        "content_sha256": digest.hexdigest(),
    }


def check_overlap(spec: DataSpec, splits: list[str], seed: int, decoded: dict | None = None) -> dict:
    """Split -> near-duplicates and shared groups against the training images (``data.overlap``).

    ``decoded`` (split -> numpy Samples) reuses splits the data check has already decoded.
    """
    from edgeseg.data.overlap import perceptual_hashes, split_overlap, verdict

    pattern = group_pattern(spec)
    training = [_decoded(spec, split, seed, decoded) for split in training_splits(spec)]
    train_hashes = np.concatenate([perceptual_hashes(part.images) for part in training])
    train_groups = groups_of([n for part in training for n in part.names], pattern, "training images")
    out = {}
    for split in splits:
        held = _decoded(spec, split, seed, decoded)
        report = split_overlap(
            held, groups_of(held.names, pattern, split), train_hashes, train_groups, spec.near_duplicate_bits
        )
        report["verdict"] = verdict(split, report)
        (log.warning if report["leaked_fraction"] > 0 else log.info)("data %s", report["verdict"])
        out[split] = report
    return out


def _decoded(spec: DataSpec, split: str, seed: int, decoded: dict | None):
    """``split`` as numpy Samples: from ``decoded`` when it holds it (filled as splits are read)."""
    if decoded is None:
        return load_split(spec, split, seed, arrays=True)
    if split not in decoded:
        decoded[split] = load_split(spec, split, seed, arrays=True)
    return decoded[split]


def check_overlap_gate(limit: float | None, split: str, overlap: dict) -> None:
    """``gates.max_eval_overlap``: refuse to train when the headline evaluation split leaks.

    Raises:
        GateError: its leaked fraction is above the limit (exit 3).
    """
    if limit is None or split not in overlap:
        return
    leaked = overlap[split]["leaked_fraction"]
    if leaked > limit:
        raise GateError(
            f"eval split {split!r}: {leaked:.1%} of it overlaps the training images, above "
            f"gates.max_eval_overlap {limit} ({overlap[split]['verdict']})"
        )
