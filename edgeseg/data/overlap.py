"""How much of a selection or evaluation split the model has, in effect, already seen.

Two signals, both reported per split against every image the model is fitted on:

* **near-duplicates**: the 64-bit perceptual hash (``imagehash.phash``: DCT of a 32x32 grey
  thumbnail) of each image, compared with every training image's; a Hamming distance of at most
  ``data.near_duplicate_bits`` flags it. The default, 8, is the largest threshold at which no
  CamVid image matched an image of another sequence (nearest other-sequence distance: min 10,
  median 18 bits); it flags 44% of frames against the nearest frame of their own sequence
  (benchmarks/camvid_overlap.py). Street scenes all look alike to a 64-bit hash: above ~10 bits
  frames of different sequences start to match.
* **shared groups**: with ``data.group_pattern`` (built in for CamVid), the groups (sequences,
  patients, cameras) that appear on both sides. A frame of a shared sequence is not a new scene
  even when it is not a near-duplicate.

``leaked_fraction`` is the share of the split flagged by either; ``gates.max_eval_overlap``
compares it for the headline evaluation split.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from edgeseg.data.samples import Samples

_CHUNK = 512  # held-out rows per distance block: bounded memory for large splits


def perceptual_hashes(images: list[np.ndarray]) -> np.ndarray:
    """One uint64 pHash per HxWx3 uint8 image."""
    import imagehash
    from PIL import Image

    bits = np.stack([imagehash.phash(Image.fromarray(image)).hash.ravel() for image in images])
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def nearest_distances(held: np.ndarray, train: np.ndarray) -> np.ndarray:
    """For each held-out hash, the Hamming distance (bits) to the closest training hash."""
    out = np.empty(len(held), dtype=np.int64)
    for start in range(0, len(held), _CHUNK):
        block = held[start : start + _CHUNK, None] ^ train[None, :]
        out[start : start + _CHUNK] = np.bitwise_count(block).min(axis=1)
    return out


def split_overlap(
    held: Samples,
    held_groups: list[str] | None,
    train_hashes: np.ndarray,
    train_groups: list[str] | None,
    threshold: int,
) -> dict:
    """Near-duplicates and shared groups of one split against the training images."""
    distances = nearest_distances(perceptual_hashes(held.images), train_hashes)
    near = distances <= threshold
    report = {
        "images": len(held),
        "near_duplicate_bits": threshold,
        "near_duplicates": int(near.sum()),
        "near_duplicate_fraction": round(float(near.mean()), 4),
        "nearest_distance_bits": {q: int(np.percentile(distances, p)) for q, p in (("min", 0), ("median", 50))},
        "groups": None,
    }
    leaked = near
    if held_groups is not None and train_groups is not None:
        train_counts, held_counts = Counter(train_groups), Counter(held_groups)
        shared = sorted(set(held_counts) & set(train_counts))
        in_shared = np.array([g in train_counts for g in held_groups])
        leaked = near | in_shared
        report["groups"] = {
            "split": dict(sorted(held_counts.items())),
            "shared": {g: {"split": held_counts[g], "training": train_counts[g]} for g in shared},
            "images_in_shared_groups": int(in_shared.sum()),
            "shared_group_fraction": round(float(in_shared.mean()), 4),
        }
    report["leaked_fraction"] = round(float(leaked.mean()), 4)
    return report


def verdict(split: str, report: dict) -> str:
    """One plain sentence: how much of ``split`` leaks and what that means for its scores."""
    parts = []
    if report["near_duplicates"]:
        parts.append(f"{report['near_duplicate_fraction']:.0%} are near-duplicates of training images")
    groups = report["groups"]
    if groups and groups["shared"]:
        names = ", ".join(groups["shared"])
        parts.append(f"{groups['shared_group_fraction']:.0%} come from groups the model trains on ({names})")
    if not parts:
        return f"{split}: no near-duplicates of training images and no shared groups: it measures new scenes"
    meaning = (
        "scores on it mostly measure memory of scenes the model trained on and overstate accuracy on new ones "
        "(hold out whole groups: data.validation)"
        if report["leaked_fraction"] >= 0.5
        else "those images score scenes the model has seen; the rest measure new ones"
    )
    return f"{split}: of its {report['images']} images, {' and '.join(parts)}: {meaning}"
