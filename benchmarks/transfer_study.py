"""ImageNet EfficientNet-Lite0 against training from scratch on CamVid, at three data fractions.

    EDGESEG_DATA=../shared/data python benchmarks/transfer_study.py \\
        --arms full,scratch --fractions 0.1,0.25,1.0 --seeds 1,3,1 --set train.epochs=25

``edgeseg study transfer`` on ``recipes/camvid_lite0_heldout.yaml`` (selected and scored on
sequence 0006R0, absent from training), as the CLI runs it: every arm x fraction x seed is a
cached build in ``runs/<name>/variants/``, so running the CLI first and this afterwards trains
nothing twice. Writes the study's summary with the environment, the command and the claim's
verdict (pretrained ahead by >= 10 mIoU at 25% and >= 5 at 100%) to
benchmarks/results/<tag>.json, and its mIoU-against-fraction plot beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
RECIPE = Path("recipes/camvid_lite0_heldout.yaml")  # as the CLI is given it: run from the checkout
CLAIM = {0.25: 10.0, 1.0: 5.0}  # fraction -> the lead the seeds' claim needs


def verdict(table: list[dict], pretrained: str, scratch: str) -> dict:
    """Per fraction: the pretrained arm's lead over scratch (means over seeds) and the claim."""
    means = {(row["arm"], row["fraction"]): row["mean"] for row in table}
    out = {}
    for fraction in sorted({f for _, f in means}):
        if (pretrained, fraction) not in means or (scratch, fraction) not in means:
            continue
        lead = round(means[(pretrained, fraction)] - means[(scratch, fraction)], 2)
        needed = CLAIM.get(fraction)
        out[str(fraction)] = {"lead": lead, "needed": needed, "holds": None if needed is None else lead >= needed}
    return out


def main(argv: list[str] | None = None) -> dict:
    from edgeseg.bench.environment import environment
    from edgeseg.experiments.study import run_study
    from edgeseg.recipe import load_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--arms", default="full,scratch")
    parser.add_argument("--fractions", default="0.1,0.25,1.0")
    parser.add_argument("--seeds", default="1,3,1")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument("--name", default="camvid_lite0_study", help="the study's run name (runs/<name>/)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--tag", default="transfer_study_camvid")
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe, [f"name={args.name}", *args.overrides])
    arms = [a for a in args.arms.split(",") if a]
    summary = run_study(
        recipe,
        args.runs,
        arms=arms,
        fractions=[float(f) for f in args.fractions.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        source=str(args.recipe),
    )
    report = {
        "benchmark": "transfer_study",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "overrides": args.overrides,
        "claim": verdict(summary["table"], arms[0], "scratch"),
        "study": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    shutil.copyfile(args.runs / args.name / "study" / "by_fraction.png", RESULTS / f"{args.tag}.png")
    for row in summary["table"]:
        spread = f"± {row['std']:.2f}" if row["std"] is not None else "(one seed)"
        print(f"{row['arm']:8s} {row['fraction']:<5g} {row['mean']:6.2f} {spread}")
    print(json.dumps(report["claim"]))
    return report


if __name__ == "__main__":
    main()
