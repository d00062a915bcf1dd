"""Transfer learning against training from scratch: same recipe, same wall-clock budget.

    python benchmarks/transfer_vs_scratch.py recipes/camvid_lraspp_efficientnet_lite0.yaml --minutes 10

Four runs, one after another: ImageNet backbone vs random init, on all training images and on a
seeded 25% subset. Writes benchmarks/results/transfer_vs_scratch.json (environment, per-epoch
val mIoU against elapsed time for each run) and transfer_vs_scratch.png (the curves).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeseg.bench.environment import environment
from edgeseg.recipe import load_recipe
from edgeseg.train.loop import fit

RESULTS = Path(__file__).parent / "results"
RUNS = {
    "imagenet_100pct": ["model.backbone_weights=imagenet", "data.train_fraction=1.0"],
    "scratch_100pct": ["model.backbone_weights=none", "data.train_fraction=1.0"],
    "imagenet_25pct": ["model.backbone_weights=imagenet", "data.train_fraction=0.25"],
    "scratch_25pct": ["model.backbone_weights=none", "data.train_fraction=0.25"],
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks/transfer_vs_scratch"))
    args = parser.parse_args(argv)

    runs = {}
    for name, overrides in RUNS.items():
        recipe = load_recipe(args.recipe, [*overrides, f"train.time_budget_min={args.minutes}"])
        result = fit(recipe, args.work / name, show_progress=False)
        runs[name] = {"overrides": overrides, "best_val_miou": result.best_miou, "history": result.history}
        print(f"{name}: best val mIoU {result.best_miou:.2f} in {len(result.history)} epochs", flush=True)
    report = {
        "benchmark": "transfer_vs_scratch",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "budget_min": args.minutes,
        "recipe": load_recipe(args.recipe).model_dump(mode="json"),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transfer_vs_scratch.json").write_text(json.dumps(report, indent=2))
    plot(runs, args.minutes, RESULTS / "transfer_vs_scratch.png")
    return report


def plot(runs: dict, minutes: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"imagenet": "-", "scratch": "--"}
    for name, run in runs.items():
        xs = [r["elapsed_s"] / 60 for r in run["history"]]
        ys = [r["val_miou"] for r in run["history"]]
        ax.plot(xs, ys, styles[name.split("_")[0]], marker="o", ms=3, label=f"{name} (best {run['best_val_miou']:.1f})")
    ax.set_xlabel("training wall time (min, 2 CPU cores)")
    ax.set_ylabel("CamVid val mIoU (%)")
    ax.set_title(f"ImageNet backbone vs random init, {minutes:g}-minute budget")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
