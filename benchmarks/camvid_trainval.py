"""Train on CamVid val as well (``data.train_on: train+val``)? And how far apart are two seeds?

    EDGESEG_DATA=../shared/data python benchmarks/camvid_trainval.py --epochs 10 --seeds train=0,1 --seeds train+val=0

The held-out recipes end on the advice "once settings are chosen, add the val frames to training
with --set data.train_on=train+val". This measures that advice where it matters, on CamVid
sequence 0006R0, which no arm trains on: ``recipes/camvid_lite0_heldout.yaml`` trained with
``data.train_on`` ``train`` (266 frames) and ``train+val`` (367: val adds 101 frames of sequence
0016E5, which training already holds), each at the seeds ``--seeds ARM=S,S`` gives it, with the
same epoch count (train+val therefore takes 1.38x the steps). Two seeds of one arm give the
run-to-run spread on the fold, the yardstick every lever of issue 13 has to clear.

Each arm is ``edgeseg train`` into ``<runs>/camvid_trainval/<arm>-s<seed>/train`` (a finished arm
is kept, an interrupted one resumes), then ``camvid_heldout.py`` scores every arm in one process
on the same images: the selected and the last epoch on the fold, and on val (memorised by the
train+val arm: its val figure is printed for contrast, not compared). Writes
benchmarks/results/<tag>.json with the environment and both commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import camvid_heldout  # beside this script: python puts its folder on sys.path

RECIPE = Path("recipes/camvid_lite0_heldout.yaml")  # as the CLI is given it: run from the checkout
ARMS = ("train", "train+val")


def arm_dir(runs: Path, train_on: str, seed: int) -> Path:
    return runs / "camvid_trainval" / f"{train_on.replace('+', '_')}-s{seed}"


def finished(run: Path, epochs: int) -> bool:
    history = run / "train" / "history.json"
    return history.is_file() and camvid_heldout.training_facts(run)["epochs"] >= epochs


def train_arm(run: Path, train_on: str, seed: int, epochs: int, root: Path) -> list[str]:
    """``edgeseg train`` for one arm; resumes an interrupted one. Returns the command."""
    command = [
        sys.executable, "-m", "edgeseg", "train", str(RECIPE), "--out", str(run / "train"),
        "--set", f"data.root={root}", "--set", f"data.train_on={train_on}", "--set", f"seed={seed}",
        "--set", f"train.epochs={epochs}", "--set", "eval.splits=[fold]",
    ]  # fmt: skip
    if not finished(run, epochs):
        resume = ["--resume"] if (run / "train" / "last.pt").is_file() else []
        subprocess.run(command + resume, check=True)
    return command


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--seeds",
        action="append",
        metavar="ARM=S,S",
        help=f"an arm ({' or '.join(ARMS)}) and its seeds [default: both arms at 0,1]",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("EDGESEG_DATA", "../shared/data")) / "camvid")
    parser.add_argument("--tag", default="camvid_trainval", help="results/<tag>.json")
    args = parser.parse_args(argv)
    seeds = arm_seeds(args.seeds or [f"{arm}=0,1" for arm in ARMS])

    commands, scoring = {}, []
    for train_on, arm in seeds.items():
        for seed in arm:
            run = arm_dir(args.runs, train_on, seed)
            name = f"{train_on}-s{seed}"
            commands[name] = " ".join(train_arm(run, train_on, seed, args.epochs, args.root.resolve()))
            scoring += ["--run", f"{name}={run}"]

    report = camvid_heldout.main([*scoring, "--root", str(args.root), "--tag", args.tag, "--no-latency"])
    report.update(benchmark="camvid_trainval", command=" ".join(["python", *sys.argv]), train_commands=commands)
    report["spread"] = seed_spread(report["runs"], seeds)
    (camvid_heldout.RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["spread"], indent=2))
    return report


def arm_seeds(items: list[str]) -> dict[str, list[int]]:
    """``["train=0,1", "train+val=0"]`` -> ``{"train": [0, 1], "train+val": [0]}``."""
    out = {}
    for item in items:
        arm, _, seeds = item.partition("=")
        if arm not in ARMS or not seeds:
            raise SystemExit(f"--seeds {item}: expected ARM=S,S with ARM one of {', '.join(ARMS)}")
        out[arm] = [int(s) for s in seeds.split(",")]
    return out


def seed_spread(runs: dict, seeds: dict[str, list[int]]) -> dict:
    """Per arm, the fold mIoU (selected and last epoch) of every seed, with mean and range."""
    out = {}
    for train_on, arm in seeds.items():
        for artifact in ("pytorch-fp32", "pytorch-fp32-last"):
            scores = [runs[f"{train_on}-s{s}"]["artifacts"][artifact]["fold"]["miou"] for s in arm]
            out[f"{train_on} {artifact}"] = {
                "fold_miou": scores,
                "mean": round(sum(scores) / len(scores), 2),
                "range": round(max(scores) - min(scores), 2),
            }
    return out


if __name__ == "__main__":
    main()
