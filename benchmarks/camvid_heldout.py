"""Accuracy on a CamVid sequence the model never trained on: built runs compared on one fold.

    python benchmarks/camvid_heldout.py --run today=runs/gen_today --run heldout=runs/camvid_lite0_heldout
    python benchmarks/camvid_heldout.py --run lite0=runs/camvid_lite0_heldout --run lite2=runs/camvid_lite2_heldout \
        --tag camvid_heldout_lite2

Each ``--run NAME=DIR`` is a finished ``edgeseg build`` whose training split left out CamVid
sequence 0006R0 (the ``camvid_lite0_heldout`` recipe carves it itself; for today's recipe the
benchmark README gives the data root that drops it). Every run is scored the same way, in this
one process run, on the same images:

* ``fold``: the 101 frames of 0006R0, a sequence absent from every run's training data;
* ``val``: CamVid's val split (sequence 0016E5, which training also holds).

Scored: the fp32 PyTorch checkpoint (the selected epoch, and the last epoch: a run that selects
on the fold is optimistic there by the selection; for a run with ``train.ema_decay`` the last
epoch's average, which is what it deploys), the QAT model in PyTorch (the compress stage's checkpoint)
and every exported artifact through its own runtime (per class, with pixel agreement against
the fp32 model), and the p50 latency of each artifact at batch 1 on 2 threads. Training facts
(epochs, img/s, wall time) come from each run's history. Writes
benchmarks/results/<tag>.json (default camvid_heldout.json) with the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from edgeseg.bench import BenchSpec, bench
from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"
FOLD_SEQUENCE = "0006R0"


def scoring_data(root: Path) -> dict:
    """CamVid with 0006R0 carved out as ``fold``: the same images for every run."""
    return {"dataset": "camvid", "root": str(root), "validation": {"kind": "groups", "groups": [FOLD_SEQUENCE]}}


def training_facts(run: Path) -> dict:
    history = json.loads((run / "train" / "history.json").read_text())
    epochs = history if isinstance(history, list) else history["epochs"]
    rates = [e["images_per_s"] for e in epochs[1:]] or [epochs[0]["images_per_s"]]
    return {
        "epochs": len(epochs),
        "images_per_s_median": round(sorted(rates)[len(rates) // 2], 2),
        "train_wall_min": round(epochs[-1]["elapsed_s"] / 60, 1),
        "best_selection_miou": max(e["val_miou"] for e in epochs),
    }


def last_epoch_weights(run: Path, scratch: Path) -> Path:
    """``last.pt``, or for an EMA run a copy whose model is the last epoch's average."""
    import torch

    from edgeseg.models.checkpoint import read_checkpoint

    last = read_checkpoint(run / "train" / "last.pt")
    if "ema" not in last:
        return run / "train" / "last.pt"
    averaged = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    kept = {k: v for k, v in last.items() if k not in ("optimizer", "scheduler", "scaler", "rng", "ema", "history")}
    path = scratch / f"{run.name}-last-ema.pt"
    torch.save({**kept, "model": averaged}, path)
    return path


def score_run(run: Path, data: dict, split: str, latency: bool, scratch: Path) -> list[dict]:
    """Every artifact of ``run`` and its fp32 and QAT PyTorch models on ``split``."""
    timing = {"iterations": 100, "rounds": 5, "warmup": 10} if latency else {"iterations": 2, "rounds": 1, "warmup": 1}
    common = {"data": data, "split": split, "threads": 2, **timing}
    reference = BenchSpec(artifact=str(run / "train" / "best.pt"), name="pytorch-fp32", runtime="torch", **common)
    specs = [
        BenchSpec(artifact=str(d), name=d.name.removeprefix("export-"), **common)
        for d in sorted(run.glob("export-*"))
        if d.is_dir()
    ]
    compressed = run / "compress" / "stage.json"
    final = json.loads(compressed.read_text())["info"]["checkpoints"]["final"] if compressed.is_file() else None
    qat = run / "compress" / str(final)
    if final and qat.is_file():
        specs.insert(0, BenchSpec(artifact=str(qat), name="pytorch-qat", runtime="torch", **common))
    # the last epoch, free of selection: best.pt is the epoch that scored highest on the selection split
    last = last_epoch_weights(run, scratch)
    specs.insert(0, BenchSpec(artifact=str(last), name="pytorch-fp32-last", runtime="torch", **common))
    return bench(specs, reference)


def summarise(result: dict, timed: bool) -> dict:
    """Accuracy, and the batch-1 p50 where it was timed (an untimed pass runs twice: no figure)."""
    accuracy = result["accuracy"] or {}
    latency = next((r for r in result["latency"] if r["batch"] == 1 and "skipped" not in r), {}) if timed else {}
    return {
        "miou": accuracy.get("miou"),
        "per_class_iou": accuracy.get("per_class_iou"),
        "agreement_with_fp32": accuracy.get("agreement_with_reference"),
        "p50_ms": latency.get("p50_ms"),
        "cv": latency.get("p50_cv"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR")
    default_root = Path(os.environ.get("EDGESEG_DATA", "../shared/data")) / "camvid"
    parser.add_argument("--root", type=Path, default=default_root)
    parser.add_argument("--tag", default="camvid_heldout", help="results/<tag>.json")
    parser.add_argument("--no-latency", action="store_true", help="accuracy only: skip the p50 timing on the fold")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="camvid-heldout-"))

    data = scoring_data(args.root)
    runs: dict[str, dict] = {}
    for item in args.run:
        name, directory = item.split("=", 1)
        run = Path(directory)
        entry = {"dir": str(run), "training": training_facts(run), "artifacts": {}}
        for split in ("fold", "val"):
            timed = split == "fold" and not args.no_latency
            for result in score_run(run, data, split, latency=timed, scratch=scratch):
                row = entry["artifacts"].setdefault(result["name"], {})
                row[split] = summarise(result, timed)
        runs[name] = entry
    report = {
        "benchmark": "camvid_heldout",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "fold": f"CamVid sequence {FOLD_SEQUENCE} (101 frames), absent from every run's training data",
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    for name, entry in runs.items():
        print(name, entry["training"])
        for artifact, scores in entry["artifacts"].items():
            print(f"  {artifact:16s} fold {scores['fold']['miou']:.2f}  val {scores['val']['miou']:.2f}  "
                  f"p50 {scores['fold']['p50_ms']} ms")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
