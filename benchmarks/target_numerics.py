"""Build here, run there: one model's int8 artifacts scored on each instruction set's numerics.

    # the quickstart's model (a build's train/best.pt), its 48 synthetic val images
    python benchmarks/target_numerics.py runs/quickstart/train/best.pt recipes/quickstart.yaml \
        --name target_numerics_quickstart

    # a CamVid fine-tune, on the first 30 val images (emulation is 10-50x slower than native)
    python benchmarks/target_numerics.py runs/benchmarks/camvid_lite0_10min/train/best.pt \
        recipes/camvid_lraspp_efficientnet_lite0.yaml --max-images 30 --name target_numerics_camvid

For each format (ONNX through ONNX Runtime, OpenVINO) and each quantization (``x86-vnni``: full
8-bit weights, what edgeseg built before targets existed; ``any``: 7-bit weights), the int8
artifact is exported from the float checkpoint as a build would (NNCF PTQ, verified, on the
target's numerics under emulation where this host is not them), then scored on the split
natively and under qemu: x86-64 with AVX2 only, and arm64 (each where the runtime runs there).
Also the fp32 PyTorch mIoU, each export's seconds, and the seconds per image under emulation.
Writes results/<name>.json with the environment (CPU flags).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from edgeseg.bench.environment import environment
from edgeseg.recipe import ExportTarget, load_recipe

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
FORMATS = ("onnx", "openvino")
QUANTIZATIONS = ("x86-vnni", "any")  # 8-bit weights, 7-bit weights


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--name", default="target_numerics")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "target_numerics")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    recipe = load_recipe(args.recipe)
    rows = [reference_row(args, recipe)]
    for fmt in FORMATS:
        for quantization in QUANTIZATIONS:
            rows.append(artifact_row(args, recipe, fmt, quantization))
            print(json.dumps({k: rows[-1][k] for k in ("artifact", "native_miou", "on_target")}), flush=True)
    out = {
        "benchmark": "target_numerics",
        "command": "python benchmarks/target_numerics.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "checkpoint": str(args.checkpoint),
        "recipe": str(args.recipe),
        "rows": rows,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2))
    return out


def reference_row(args, recipe) -> dict:
    from edgeseg.bench.measure import BenchSpec, measure

    spec = BenchSpec(artifact=str(args.checkpoint), runtime="torch", **_scoring(args, recipe))
    accuracy = measure(spec)["accuracy"]
    return {"artifact": "pytorch-fp32", "native_miou": accuracy["miou"], "images": accuracy["images"]}


def artifact_row(args, recipe, fmt: str, quantization: str) -> dict:
    from edgeseg.bench.measure import BenchSpec, measure
    from edgeseg.exporters import export_checkpoint

    out = args.work / f"{fmt}-int8-{quantization}"
    target = ExportTarget(format=fmt, precision="int8", target=quantization)
    started = time.monotonic()
    meta = export_checkpoint(args.checkpoint, recipe, target, out)
    export_s = time.monotonic() - started
    emulate = ("x86-avx2", "arm64") if fmt == "onnx" else ("x86-avx2",)  # OpenVINO has no aarch64 wheel here
    result = measure(BenchSpec(artifact=str(out), **_scoring(args, recipe), emulate=emulate))
    accuracy = result["accuracy"]
    return {
        "artifact": target.name,
        "weights": meta["target"]["int8"],
        "export_s": round(export_s, 1),
        "verification": {
            "native_agreement": meta["verification"]["agreement"],
            "on_target": [
                {k: c.get(k) for k in ("isa", "emulated", "checked", "agreement", "passed")}
                for c in meta["verification"]["on_target"]
            ],
        },
        "native_miou": accuracy["miou"],
        "on_target": [
            {k: c[k] for k in ("isa", "miou", "agreement_with_native", "seconds_per_image", "session")}
            for c in accuracy["on_target"]
        ],
    }


def _scoring(args, recipe) -> dict:
    """Accuracy only: one timed call (latency is not what this benchmark is about)."""
    return {
        "data": recipe.data.model_dump(mode="json"),
        "split": recipe.eval.split,
        "seed": recipe.seed,
        "max_images": args.max_images,
        "iterations": 1,
        "warmup": 1,
        "warmup_s": 0.0,
        "rounds": 1,
        "threads": 2,
    }


if __name__ == "__main__":
    main()
