"""Structured pruning on the real CamVid model: half the MACs, distilled, then QAT; timed in ORT and OpenVINO.

    python benchmarks/camvid_prune.py runs/benchmarks/camvid_lite0_45min/best.pt \
        recipes/camvid_lraspp_efficientnet_lite0.yaml --keep-macs 0.5 --prune-minutes 20 --qat-epochs 2

One `edgeseg.compress` run with the steps a recipe would give,

    compress.steps: [{kind: prune, target_macs: 0.5, ...distill}, {kind: qat, ...}]

starting from the 45-minute LRASPP-EfficientNet-Lite0 fine-tune (benchmarks/README.md section 1).
The compress stage writes float.pt (pruned and distilled) and model.pt (pruned + QAT). Each
checkpoint is then exported and verified like `edgeseg build` does (ONNX for ONNX Runtime,
OpenVINO IR), timed at batch 1 on 2 threads in interleaved rounds, and scored on CamVid val
(101 images, 360x480) through its own runtime. With --unpruned-int8 the QAT checkpoint of
benchmarks/camvid_quantize.py joins the table, so INT8 with and without pruning sit side by side.
Writes results/<name>.json with the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from export_artifacts import artifact_miou, timed_rounds  # noqa: E402

from edgeseg.bench.environment import environment  # noqa: E402
from edgeseg.recipe import ExportTarget, load_recipe  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def compress(args) -> tuple[dict, float]:
    from edgeseg.compress import compress_checkpoint

    prune = {
        "kind": "prune",
        "target_macs": args.keep_macs,
        "importance": args.importance,
        "epochs": 200,
        "time_budget_min": args.prune_minutes,
        "lr": args.lr,
        "iterations": args.iterations,
        "distill": {"enabled": not args.no_distill, "temperature": args.temperature, "weight": args.distill_weight},
    }
    steps = [prune]
    if args.qat_epochs:
        steps.append({"kind": "qat", "epochs": args.qat_epochs, "calibration_samples": 128, "lr": 1e-4})
    recipe = load_recipe(args.recipe, [f"compress.steps={json.dumps(steps)}"])
    started = time.monotonic()
    report = compress_checkpoint(recipe, args.checkpoint, args.work / "compress")
    return report, time.monotonic() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--keep-macs", type=float, default=0.5)
    parser.add_argument("--importance", default="lamp")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--prune-minutes", type=float, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-distill", action="store_true")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--distill-weight", type=float, default=0.5)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--unpruned-int8", type=Path, help="a QAT checkpoint of the unpruned model, for the table")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="camvid_prune")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    args.work = args.work or REPO / "runs" / "benchmarks" / args.name
    torch.set_num_threads(args.threads)

    from edgeseg.data import load_split
    from edgeseg.exporters import export_checkpoint
    from edgeseg.models.checkpoint import load_model
    from edgeseg.runtimes import open_session

    report, compress_s = compress(args)
    print(
        "compress",
        json.dumps({s["kind"]: (s["miou"], s["miou_delta"], s["gmacs"]) for s in report["steps"]}),
        flush=True,
    )
    checkpoints = {
        "unpruned": args.checkpoint,
        "pruned": args.work / "compress" / ("float.pt" if args.qat_epochs else "model.pt"),
    }
    rows = [
        ("unpruned", "onnx", "fp32"),
        ("unpruned", "openvino", "fp32"),
        ("pruned", "onnx", "fp32"),
        ("pruned", "openvino", "fp32"),
    ]
    if args.qat_epochs:
        checkpoints["pruned+qat"] = args.work / "compress" / "model.pt"
        rows += [("pruned+qat", "onnx", "int8"), ("pruned+qat", "openvino", "int8")]
    if args.unpruned_int8:
        checkpoints["unpruned+qat"] = args.unpruned_int8
        rows += [("unpruned+qat", "onnx", "int8"), ("unpruned+qat", "openvino", "int8")]

    base = load_model(args.checkpoint).recipe
    artifacts, runners, sessions = {}, {}, {}
    for model_name, fmt, precision in rows:
        name = f"{model_name} {fmt}-{precision}"
        out = args.work / "export" / name.replace(" ", "_").replace("+", "_")
        meta = export_checkpoint(checkpoints[model_name], base, ExportTarget(format=fmt, precision=precision), out)
        session = open_session(out, threads=args.threads)
        sessions[name] = (session, out, meta)
        runners[name] = session.run
        artifacts[name] = {
            "checkpoint": str(checkpoints[model_name]),
            "size_mb": round(meta["artifact"]["size_bytes"] / 1e6, 3),
            "verification_agreement": meta["verification"]["agreement"],
            "session_precision": session.info.precision,
        }
        print(name, json.dumps(artifacts[name]), flush=True)

    val = load_split(base.data, "val", base.seed)
    size = tuple(load_model(args.checkpoint).input_size)
    loaded = load_model(args.checkpoint)
    image = torch.nn.functional.interpolate(val.images[0][None].float(), size=size, mode="bilinear")
    x = (
        ((image / 255 - torch.tensor(loaded.mean).view(1, 3, 1, 1)) / torch.tensor(loaded.std).view(1, 3, 1, 1))
        .numpy()
        .astype(np.float32)
    )
    latency = timed_rounds(runners, x, warmup=10, iters=args.iters, rounds=args.rounds)
    steps = {s["kind"]: s for s in report["steps"]}
    macs = {
        "unpruned": report["fp32"]["gmacs"],
        "pruned": steps["prune"]["gmacs"],
        "pruned+qat": steps["prune"]["gmacs"],
        "unpruned+qat": report["fp32"]["gmacs"],
    }
    for name, figures in latency.items():
        model_name, target = name.split(" ")
        runtime_fp32 = latency[f"unpruned {target.split('-')[0]}-fp32"]["p50_ms"]
        figures.update(
            {
                "gmacs": macs[model_name],
                "speedup_vs_unpruned_fp32_same_runtime": round(runtime_fp32 / figures["p50_ms"], 3),
                "val_miou": artifact_miou(
                    sessions[name][0], val, json.loads((sessions[name][1] / "model.json").read_text())
                ),
            }
        )
        artifacts[name].update(figures)
    result = {
        "benchmark": "camvid_prune",
        "command": "python benchmarks/camvid_prune.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "compress_seconds": round(compress_s, 1),
        "compress_report": report,
        "table": artifacts,
        "threads": args.threads,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    for name, row in artifacts.items():
        print(
            f"{name:<28} {row['gmacs']:.3f} GMACs  {row['size_mb']:7.2f} MB  p50 {row['p50_ms']:7.2f} ms  "
            f"x{row['speedup_vs_unpruned_fp32_same_runtime']:.2f}  mIoU {row['val_miou']:.2f}  "
            f"cv {row['round_p50_cv']:.3f}"
        )
    return result


if __name__ == "__main__":
    main()
