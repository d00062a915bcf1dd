"""Does int8 or pruning lose more under camera corruptions than on clean images? CamVid, measured.

    python benchmarks/robustness_camvid.py --recipe recipes/camvid_lite0_heldout.yaml \\
        --artifact fp32=runs/camvid_lite0_heldout/train/best.pt \\
        --artifact qat-int8=runs/camvid_lite0_heldout/export-openvino-int8 ... --max-images 50

Every ``--artifact NAME=PATH`` (a bundle, or a checkpoint scored through PyTorch) is scored
through its own runtime on the recipe's headline split (``eval.splits[0]``) and on corrupted
copies of its first ``--max-images`` images: every corruption of ``edgeseg/corruptions.py`` at
the severities given, seeded, so every artifact sees identical pixels (the copies are made once
and shared). The first artifact is the baseline: for each other one the table gives its clean
mIoU drop against the baseline and its corrupted mIoU drop, and their difference, the extra
loss the compression costs under corruption. Writes benchmarks/results/<tag>.json with the
environment and the wall time of each artifact's pass.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgeseg.bench import BenchSpec, bench
from edgeseg.bench.environment import environment
from edgeseg.corruptions import CORRUPTION_NAMES
from edgeseg.recipe import load_recipe

RESULTS = Path(__file__).parent / "results"


def comparison(rows: dict[str, dict]) -> dict[str, dict]:
    """Each artifact against the first: clean drop, corrupted drop, and the extra under corruption."""
    names = list(rows)
    base = rows[names[0]]
    out = {}
    for name in names[1:]:
        r = rows[name]
        clean_drop = base["clean_miou"] - r["clean_miou"]
        corrupted_drop = base["mean_miou"] - r["mean_miou"]
        per = {c: round(base["corruptions"][c]["miou"] - r["corruptions"][c]["miou"], 2) for c in r["corruptions"]}
        out[name] = {
            "clean_drop": round(clean_drop, 2),
            "corrupted_drop": round(corrupted_drop, 2),
            "extra_drop_under_corruption": round(corrupted_drop - clean_drop, 2),
            "corrupted_drop_by_corruption": per,
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument("--artifact", action="append", required=True, help="NAME=PATH (the first is the baseline)")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--severity", type=int, action="append", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="robustness_camvid")
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe, args.overrides)
    settings = {"corruptions": list(CORRUPTION_NAMES), "severities": args.severity or [1, 3, 5]}
    settings["max_images"] = args.max_images
    common = {
        "data": recipe.data.model_dump(mode="json"),
        "split": recipe.eval.split,
        "seed": recipe.seed,
        "threads": args.threads,
        "iterations": 20,
        "rounds": 2,
        "robustness": settings,
    }
    specs = []
    for item in args.artifact:
        name, path = item.split("=", 1)
        runtime = "torch" if path.endswith(".pt") else None
        specs.append(BenchSpec(artifact=path, name=name, runtime=runtime, **common))
    started, seconds = time.monotonic(), {}

    def timed(result: dict) -> None:
        nonlocal started
        seconds[result["name"]] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    results = bench(specs, on_result=timed)
    rows = {r["name"]: r["accuracy"]["robustness"] for r in results}
    report = {
        "benchmark": "robustness_camvid",
        "command": " ".join(["python", *sys.argv]),
        "recipe": str(args.recipe),
        "split": recipe.eval.split,
        "settings": settings,
        "environment": environment(),
        "seconds_per_artifact": seconds,
        "artifacts": {
            r["name"]: {"path": r["artifact"]["path"], "runtime": r["session"]["runtime"], **rows[r["name"]]}
            for r in results
        },
        "against_first": comparison(rows),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    for name, row in rows.items():
        per = ", ".join(f"{c} {v['retention']:.2f}" for c, v in row["corruptions"].items())
        print(f"{name:14s} clean {row['clean_miou']:.2f} corrupted {row['mean_miou']:.2f} "
              f"retention {row['retention']:.3f} ({seconds[name]} s): {per}")  # fmt: skip
    for name, c in report["against_first"].items():
        print(f"{name:14s} drop clean {c['clean_drop']:+.2f} corrupted {c['corrupted_drop']:+.2f} "
              f"extra {c['extra_drop_under_corruption']:+.2f}")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
