"""The overlap detector on CamVid: what it flags in the val split and in a group-disjoint fold,
and the measurement behind the default near-duplicate threshold (``data.near_duplicate_bits``).

    python benchmarks/camvid_overlap.py [--root ../shared/data/camvid]

For every CamVid image (train and val) the 64-bit pHash distance to its nearest image of the
*same* sequence (another frame, seconds away) and of *any other* sequence. A threshold should
flag the first and never the second. Then edgeseg's own data check, as a build runs it, on two
set-ups: the dataset's val split (today's default) and a fold holding out sequence 0006R0.
Writes benchmarks/results/camvid_overlap.json with the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.bench.environment import environment
from edgeseg.data import load_split
from edgeseg.data.check import check_overlap
from edgeseg.data.overlap import perceptual_hashes
from edgeseg.data.splits import groups_of
from edgeseg.recipe import DataSpec

RESULTS = Path(__file__).parent / "results"
PATTERN = r"^([^_]+)_"


def _quantiles(values: np.ndarray) -> dict:
    return {f"p{q}": int(np.percentile(values, q)) for q in (0, 1, 5, 50, 95, 100)}


def nearest_by_relation(hashes: np.ndarray, groups: list[str]) -> dict:
    """Per image: distance to the nearest other frame of its sequence and to any other sequence."""
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :]).astype(np.int64)
    same = np.equal.outer(groups, groups)
    np.fill_diagonal(bits, 99)
    within = np.where(same, bits, 99).min(axis=1)
    across = np.where(~same, bits, 99).min(axis=1)
    return {"same_sequence": within, "other_sequence": across}


def threshold_table(within: np.ndarray, across: np.ndarray) -> list[dict]:
    return [
        {
            "bits": t,
            "same_sequence_flagged": round(float((within <= t).mean()), 4),
            "other_sequence_flagged": round(float((across <= t).mean()), 4),
        }
        for t in range(0, 33, 2)
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_root = Path(os.environ.get("EDGESEG_DATA", "../shared/data")) / "camvid"
    parser.add_argument("--root", type=Path, default=default_root)
    args = parser.parse_args(argv)

    base = {"dataset": "camvid", "root": str(args.root)}
    started = time.time()
    samples = [load_split(DataSpec.model_validate(base), split, arrays=True) for split in ("train", "val")]
    names = [n for s in samples for n in s.names]
    hashes = perceptual_hashes([img for s in samples for img in s.images])
    relation = nearest_by_relation(hashes, groups_of(names, PATTERN, "camvid"))
    default = DataSpec.model_validate(base)
    fold = DataSpec.model_validate({**base, "validation": {"kind": "groups", "groups": ["0006R0"]}})
    report = {
        "benchmark": "camvid_overlap",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "images": len(names),
        "nearest_distance_bits": {k: _quantiles(v) for k, v in relation.items()},
        "threshold_table": threshold_table(relation["same_sequence"], relation["other_sequence"]),
        "default_bits": default.near_duplicate_bits,
        "val_split_against_train": check_overlap(default, ["val"], 0)["val"],
        "fold_0006R0_against_rest_of_train": check_overlap(fold, ["fold", "val"], 0),
        "seconds": round(time.time() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "camvid_overlap.json").write_text(json.dumps(report, indent=2))
    for row in report["threshold_table"]:
        print(row)
    print(json.dumps(report["nearest_distance_bits"]))
    return report


if __name__ == "__main__":
    main()
