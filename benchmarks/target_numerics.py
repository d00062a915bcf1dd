"""Build here, run there: one model's int8 artifacts scored on each instruction set's numerics.

    # the quickstart's model (a build's train/best.pt), its 48 synthetic val images
    python benchmarks/target_numerics.py runs/quickstart/train/best.pt recipes/quickstart.yaml \
        --name target_numerics_quickstart

    # a CamVid fine-tune, on the first 30 val images (emulation is 10-50x slower than native)
    python benchmarks/target_numerics.py runs/benchmarks/camvid_lite0_10min/train/best.pt \
        recipes/camvid_lraspp_efficientnet_lite0.yaml --max-images 30 --name target_numerics_camvid

    # a held-out model on its group-disjoint fold, the phone formats too
    EDGESEG_DATA=../shared/data python benchmarks/target_numerics.py \
        runs/benchmarks/camvid_lite0_heldout_10min_fold2/best.pt recipes/camvid_lite0_heldout.yaml \
        --split fold --set 'data.validation.groups=[0001TP]' --formats onnx openvino litert executorch \
        --name target_numerics_camvid_lite0_fold_0001TP

For each format and each quantization (ONNX through ONNX Runtime and OpenVINO: ``x86-vnni``,
full 8-bit weights, what edgeseg built before targets existed, and ``any``, 7-bit weights; the
phone formats: ``any``, their quantizers' own 8-bit scheme), the int8 artifact is exported from
the float checkpoint as a build would (verified, on the target's numerics under emulation where
this host is not them), then scored on the split natively and under qemu: x86-64 with AVX2 only,
and arm64, each where the runtime runs there (``edgeseg.formats.RUNTIMES[...].emulated_on``; a
row's ``not_emulated`` says why not elsewhere: OpenVINO and ExecuTorch have no arm64 run here).
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
from edgeseg.formats import FORMATS, RUNTIMES
from edgeseg.recipe import ExportTarget, load_recipe
from edgeseg.runtimes.emulate import QEMU  # the instruction sets qemu can run here

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
# format -> the export targets it is quantized for: 8-bit and 7-bit weights for the NNCF formats;
# the phone formats quantize the same way for every target (XNNPACK's and LiteRT's schemes).
QUANTIZATIONS = {
    "onnx": ("x86-vnni", "any"),
    "openvino": ("x86-vnni", "any"),
    "litert": ("any",),
    "executorch": ("any",),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--split", default=None, help="the split to score (default: the recipe's eval split)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument("--formats", nargs="+", default=["onnx", "openvino"], choices=list(QUANTIZATIONS))
    parser.add_argument("--name", default="target_numerics")
    parser.add_argument("--work", type=Path, default=None, help="default: runs/benchmarks/<name>")
    args = parser.parse_args(argv)
    args.work = args.work or REPO / "runs" / "benchmarks" / args.name
    torch.set_num_threads(2)
    recipe = load_recipe(args.recipe, args.overrides)
    rows = [reference_row(args, recipe)]
    for fmt in args.formats:
        for quantization in QUANTIZATIONS[fmt]:
            rows.append(artifact_row(args, recipe, fmt, quantization))
            print(
                json.dumps({k: rows[-1].get(k) for k in ("artifact", "native_miou", "on_target", "refused")}),
                flush=True,
            )
            write(args, argv, recipe, rows)  # each row as it comes: a run of an hour keeps what it measured
    return write(args, argv, recipe, rows)


def write(args, argv, recipe, rows: list[dict]) -> dict:
    out = {
        "benchmark": "target_numerics",
        "command": "python benchmarks/target_numerics.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "checkpoint": str(args.checkpoint),
        "recipe": str(args.recipe),
        "split": _scoring(args, recipe)["split"],
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
    """The artifact's scores, or, when the export's parity check refuses it, that refusal."""
    from edgeseg.bench.measure import BenchSpec, measure
    from edgeseg.errors import ExportError
    from edgeseg.exporters import export_checkpoint

    out = args.work / f"{fmt}-int8-{quantization}"
    target = ExportTarget(format=fmt, precision="int8", target=quantization)
    started = time.monotonic()
    try:
        meta = export_checkpoint(args.checkpoint, recipe, target, out)
    except ExportError as exc:
        return {"artifact": target.name, "refused": str(exc), "export_s": round(time.monotonic() - started, 1)}
    export_s = time.monotonic() - started
    runtime = RUNTIMES[FORMATS[fmt].runtimes[0]]
    emulate = tuple(isa for isa in QEMU if isa in runtime.emulated_on)
    result = measure(BenchSpec(artifact=str(out), **_scoring(args, recipe), emulate=emulate))
    accuracy = result["accuracy"]
    return {
        "artifact": target.name,
        "runtime": runtime.name,
        "not_emulated": {isa: runtime.not_emulated for isa in QEMU if isa not in emulate},
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
        "split": args.split or recipe.eval.split,
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
