"""CamVid fine-tuning benchmark: val mIoU (11 classes, 360x480, single scale) within a wall-clock
training budget, with the per-epoch curve.

    python benchmarks/camvid_finetune.py recipes/camvid_lraspp_efficientnet_lite0.yaml \
        --tag camvid_lite0_45min [--set train.time_budget_min=45 ...]

Writes benchmarks/results/<tag>.json: environment, resolved recipe, per-epoch history
(elapsed seconds, loss, val mIoU) and the best checkpoint's full val metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgeseg.bench.environment import environment
from edgeseg.eval import evaluate_checkpoint
from edgeseg.recipe import load_recipe
from edgeseg.train.loop import fit

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe, args.overrides)
    out_dir = args.work / args.tag
    started = time.time()
    result = fit(recipe, out_dir, on_epoch=lambda r: print(json.dumps(r), flush=True), show_progress=False)
    wall = time.time() - started
    metrics = evaluate_checkpoint(result.best, "val")
    report = {
        "benchmark": "camvid_finetune",
        "tag": args.tag,
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "recipe": recipe.model_dump(mode="json"),
        "wall_s_including_data_load": round(wall, 1),
        "best_val_miou": result.best_miou,
        "epochs_run": len(result.history),
        "history": result.history,
        "best_checkpoint_val_metrics": metrics,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    print(f"best val mIoU {result.best_miou:.2f} after {len(result.history)} epochs; {wall / 60:.1f} min")
    return report


if __name__ == "__main__":
    main()
