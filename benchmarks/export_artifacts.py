"""Export every CPU artifact of one model, verify it, and time it against PyTorch eager fp32.

    # the issue's latency targets: LRASPP-MobileNetV3-Large, 360x480, batch 1 (random init:
    # no MobileNetV3 ImageNet weights offline; latency does not depend on the weights)
    python benchmarks/export_artifacts.py --backbone mobilenet_v3_large --name export_mv3_large

    # parity and accuracy of a real model: the 45-minute CamVid EfficientNet-Lite0 fine-tune
    python benchmarks/export_artifacts.py --checkpoint runs/benchmarks/camvid_lite0_45min/best.pt \
        --miou --name export_camvid_lite0

For each artifact: export seconds (verification included), bundle size, the verification figures
from model.json, latency at batch 1 on 2 threads, and with --miou the CamVid val mIoU computed
through the artifact's own runtime. Sessions are timed in interleaved rounds so that machine
drift hits every runtime alike; the ratios are the figures to trust. Also times the graph NNCF
exports by default (no BN folding, per-channel activations, signed int8, HardSwish in place)
to show what edgeseg's Q/DQ preparation changes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgeseg.bench.environment import environment
from edgeseg.recipe import ExportTarget, load_recipe

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]

TARGETS = [
    ("onnx", "fp32", "nncf"),
    ("onnx", "fp16", "nncf"),
    ("onnx", "int8", "nncf"),
    ("onnx", "int8", "ort_static"),
    ("ort", "int8", "nncf"),
    ("openvino", "fp32", "nncf"),
    ("openvino", "fp16", "nncf"),
    ("openvino", "int8", "nncf"),
]


def random_init_checkpoint(backbone: str, out: Path) -> Path:
    """An edgeseg checkpoint of LRASPP on ``backbone`` with CamVid's 11 classes, random init."""
    from edgeseg.data import dataset_info
    from edgeseg.models import build_model
    from edgeseg.models.checkpoint import checkpoint_facts, save_atomic

    recipe = load_recipe(
        REPO / "recipes" / "camvid_lraspp_mobilenet_v3_large.yaml",
        [f"model.backbone={backbone}", "model.weights=null", "model.backbone_weights=none", "name=bench"],
    )
    info = dataset_info(recipe.data)
    torch.manual_seed(0)
    model = build_model(recipe.model, info.num_classes, load_pretrained=False).eval()
    path = out / "model.pt"
    save_atomic({**checkpoint_facts(recipe, info, (360, 480)), "model": model.state_dict()}, path)
    return path


def nncf_default_qdq(checkpoint: Path, recipe, out: Path) -> Path:
    """The Q/DQ graph NNCF gives with its defaults, exported the same way (for comparison)."""
    import nncf

    from edgeseg.compress.quantize import set_qdq_export
    from edgeseg.exporters import prepare_job
    from edgeseg.exporters.onnx_export import torch_to_onnx

    job = prepare_job(checkpoint, recipe, ExportTarget(format="onnx", precision="int8"))
    batches = job.calibration_batches()
    quantized = nncf.quantize(job.loaded.model, nncf.Dataset(batches), subset_size=len(batches))
    set_qdq_export(quantized)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    torch_to_onnx(quantized, batches[0], path, opset=17, output_kind="logits", dynamic_batch=False, dynamic_hw=False)
    return path


def timed_rounds(sessions: dict, x: np.ndarray, *, warmup: int, iters: int, rounds: int) -> dict:
    """Interleaved rounds: every session runs ``iters`` times per round, in turn."""
    samples = {name: [] for name in sessions}
    round_p50 = {name: [] for name in sessions}
    for run in sessions.values():
        for _ in range(warmup):
            run(x)
    for _ in range(rounds):
        for name, run in sessions.items():
            times = []
            for _ in range(iters):
                started = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - started)
            samples[name] += times
            round_p50[name].append(statistics.median(times))
    out = {}
    for name, times in samples.items():
        ms = np.asarray(times) * 1e3
        p50s = np.asarray(round_p50[name]) * 1e3
        out[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "mean_ms": round(float(ms.mean()), 3),
            "min_ms": round(float(ms.min()), 3),
            "round_p50_ms": [round(float(v), 3) for v in p50s],
            "round_p50_cv": round(float(p50s.std() / p50s.mean()), 4),
            "iterations": len(ms),
            "warmup": warmup,
        }
    return out


def artifact_miou(session, samples, meta: dict) -> float:
    """CamVid val mIoU through the artifact's runtime (model.json preprocessing, native size)."""
    from edgeseg.data.transforms import normalize
    from edgeseg.eval.metrics import confusion_matrix, summarize

    names = meta["classes"]["names"]
    pre = meta["input"]["preprocessing"]
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    for image, mask in zip(samples.images, samples.masks, strict=True):
        x = image[None] if pre["in_graph"] else normalize(image[None], pre["mean"], pre["std"])
        out = session.run(x.numpy())
        classes = out if meta["output"]["kind"] == "class_map" else out.argmax(1)
        cm += confusion_matrix(classes, mask[None].numpy(), len(names))
    return summarize(cm, names)["miou"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="an edgeseg checkpoint (default: random-init --backbone)")
    parser.add_argument("--backbone", default="mobilenet_v3_large")
    parser.add_argument("--name", default="export_artifacts")
    parser.add_argument("--miou", action="store_true", help="score every artifact on the val split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks")
    args = parser.parse_args(argv)

    from edgeseg.data import load_split
    from edgeseg.exporters import export_checkpoint
    from edgeseg.models.checkpoint import load_model, read_checkpoint
    from edgeseg.recipe import apply_overrides, recipe_from_dict
    from edgeseg.runtimes import open_session

    torch.set_num_threads(args.threads)
    work = args.work / args.name
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or random_init_checkpoint(args.backbone, work)
    source = f"{checkpoint} (embedded recipe)"
    base = recipe_from_dict(read_checkpoint(checkpoint)["recipe"], source)
    artifacts, sessions, runners = {}, {}, {}
    for fmt, precision, method in TARGETS:
        name = f"{fmt}-{precision}" + ("-ort_static" if method == "ort_static" else "")
        recipe = apply_overrides(base, [f"export.calibration.method={method}", "export.verify.num_images=8"], source)
        started = time.monotonic()
        meta = export_checkpoint(checkpoint, recipe, ExportTarget(format=fmt, precision=precision), work / name)
        artifacts[name] = {
            "export_seconds_with_verification": round(time.monotonic() - started, 2),
            "size_mb": round(meta["artifact"]["size_bytes"] / 1e6, 3),
            "verification": {k: v for k, v in meta["verification"].items() if k not in ("session", "limits")},
            "quantization": meta["artifact"].get("quantization"),
        }
        print(name, json.dumps(artifacts[name]), flush=True)
        sessions[name] = (open_session(work / name, threads=args.threads), work / name)

    # Other ways to run the same files: OpenVINO's default CPU precision, and the NNCF Q/DQ ONNX.
    sessions["openvino-fp32 (plugin default hint)"] = (
        open_session(work / "openvino-fp32", threads=args.threads, precision_hint="default"),
        work / "openvino-fp32",
    )
    sessions["openvino reading onnx-int8 (nncf Q/DQ)"] = (
        open_session(work / "onnx-int8" / "model.onnx", "openvino", threads=args.threads),
        work / "onnx-int8",
    )
    default_qdq = nncf_default_qdq(checkpoint, base, work / "onnx-int8-nncf-default")
    sessions["onnx-int8 (nncf default export, unprepared)"] = (
        open_session(default_qdq, threads=args.threads),
        work / "onnx-fp32",
    )

    model = load_model(checkpoint).model.eval()

    def eager(batch):
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    runners["pytorch eager fp32"] = eager
    for name, (session, _) in sessions.items():
        runners[name] = session.run
    size = tuple(base.export.input_size or base.data.image_size or read_checkpoint(checkpoint)["input_size"])
    val = load_split(base.data, "val", base.seed)
    image = torch.nn.functional.interpolate(val.images[0][None].float(), size=size, mode="bilinear")
    loaded = load_model(checkpoint)
    x = (
        ((image / 255 - torch.tensor(loaded.mean).view(1, 3, 1, 1)) / torch.tensor(loaded.std).view(1, 3, 1, 1))
        .numpy()
        .astype(np.float32)
    )
    latency = timed_rounds(runners, x, warmup=10, iters=args.iters, rounds=args.rounds)
    eager_p50 = latency["pytorch eager fp32"]["p50_ms"]
    ort_p50 = latency["onnx-fp32"]["p50_ms"]
    for name, figures in latency.items():
        figures["vs_pytorch_eager_fp32"] = round(figures["p50_ms"] / eager_p50, 3)
        figures["vs_onnxruntime_fp32"] = round(figures["p50_ms"] / ort_p50, 3)
        if name in sessions:
            info = sessions[name][0].info
            figures["session"] = {"runtime": info.runtime, "precision": info.precision, "threads": info.threads}
    if args.miou:
        with torch.no_grad():
            from edgeseg.eval import evaluate_samples

            _, summary = evaluate_samples(model, val, class_names=loaded.class_names, mean=loaded.mean, std=loaded.std)
        latency["pytorch eager fp32"]["val_miou"] = summary["miou"]
        for name, (session, bundle) in sessions.items():
            latency[name]["val_miou"] = artifact_miou(session, val, json.loads((bundle / "model.json").read_text()))
    result = {
        "benchmark": "export_artifacts",
        "command": "python benchmarks/export_artifacts.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": {
            "head": base.model.head,
            "backbone": base.model.backbone,
            "input_size": list(size),
            "checkpoint": str(checkpoint),
            "weights": "random init" if args.checkpoint is None else "fine-tuned",
        },
        "threads": args.threads,
        "artifacts": artifacts,
        "latency_batch1": latency,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    for name, figures in latency.items():
        print(
            f"{name:<45} p50 {figures['p50_ms']:7.2f} ms  x{figures['vs_pytorch_eager_fp32']:.2f} eager  "
            f"x{figures['vs_onnxruntime_fp32']:.2f} ORT fp32  cv {figures['round_p50_cv']:.3f}  "
            f"mIoU {figures.get('val_miou', '-')}"
        )
    return result


if __name__ == "__main__":
    main()
