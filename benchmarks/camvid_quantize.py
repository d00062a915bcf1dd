"""INT8 on the real CamVid model: post-training quantization against quantization-aware training.

    python benchmarks/camvid_quantize.py runs/benchmarks/camvid_lite0_45min/best.pt \
        recipes/camvid_lraspp_efficientnet_lite0.yaml --qat-epochs 4

Both steps start from the same fine-tuned checkpoint (the 45-minute LRASPP-EfficientNet-Lite0
of benchmarks/README.md section 1), quantize with NNCF through `edgeseg.compress` exactly as a
recipe's `compress.steps` would, and score on CamVid val (101 images, 360x480). Writes
results/camvid_quantize.json with the environment, the per-class IoU deltas and the time each
step took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from edgeseg.bench.environment import environment
from edgeseg.compress import compress_checkpoint
from edgeseg.recipe import load_recipe

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--qat-epochs", type=int, default=4)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "camvid_quantize")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    steps = {
        "ptq": {"kind": "ptq", "calibration_samples": args.calibration},
        "qat": {"kind": "qat", "calibration_samples": args.calibration, "epochs": args.qat_epochs, "lr": args.qat_lr},
    }
    results = {}
    for name, step in steps.items():
        recipe = load_recipe(args.recipe, [f"compress.steps=[{json.dumps(step)}]"])
        started = time.monotonic()
        report = compress_checkpoint(recipe, args.checkpoint, args.work / name)
        results[name] = {**report["steps"][-1], "seconds": round(time.monotonic() - started, 1)}
        results["fp32"] = report["fp32"]
        print(name, results[name]["miou"], results[name]["miou_delta"], results[name]["seconds"], flush=True)
    out = {
        "benchmark": "camvid_quantize",
        "command": "python benchmarks/camvid_quantize.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "results": results,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "camvid_quantize.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
