"""Every runtime x precision point a build's bundles offer, beside the runtimes' own tools.

    python benchmarks/runtime_precision.py runs/quickstart --recipe recipes/quickstart.yaml \
        --name runtime_precision_quickstart

For each bundle under DIR and each runtime the format table lists for it (TensorRT only with a
GPU), at f32 and, on OpenVINO where the CPU offers it, at bf16: p50/p99 latency at batch 1,
memory and mIoU on the recipe's val split, all through `edgeseg bench` (a fresh pinned process
each). In the same run, on the same files and threads: OpenVINO's `benchmark_app` (its median)
and a bare ONNX Runtime loop (the median of --iterations calls). Writes results/<name>.json with
the environment, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.bench import BenchSpec, bench
from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"


def points(run: Path) -> list[tuple[Path, str, str]]:
    """(bundle, runtime, precision) for every point the bundles of ``run`` offer on this host."""
    import openvino as ov

    from edgeseg.bundle import read_sidecar
    from edgeseg.formats import FORMATS

    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    out = []
    for bundle in sorted(p.parent for p in run.glob("*/model.json")):
        fmt = read_sidecar(bundle)["artifact"]["format"]
        for runtime in FORMATS[fmt].runtimes:
            if runtime == "tensorrt":
                continue  # the GPU machine's benchmark
            precisions = ["f32", "bf16"] if runtime == "openvino" and has_bf16 else ["f32"]
            out += [(bundle, runtime, precision) for precision in precisions]
    return out


def benchmark_app(model: Path, threads: int, precision: str, seconds: int) -> float | None:
    """OpenVINO's own tool on the same file and threads: its median latency in ms (one stream)."""
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    # -hint none: its UI takes -nthreads only without a hint; one stream is what the latency hint picks
    command = [tool, "-m", str(model), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    command += ["-t", str(seconds), "-infer_precision", precision]
    for _ in range(3):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        found = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", done.stdout + done.stderr)  # us below 1 ms
        if found:
            return float(found.group(1)) / (1000 if found.group(2) == "us" else 1)
        print(f"benchmark_app exited {done.returncode} on {model} at {precision} without a median")
    return None


def bare_onnxruntime(model: Path, threads: int, iterations: int) -> float:
    """A plain ONNX Runtime loop on the same file: the median of ``iterations`` timed calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in feed.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if "uint8" in feed.type:
        x = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    for _ in range(20):
        session.run(None, {feed.name: x})
    times = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        session.run(None, {feed.name: x})
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a build's run directory (its export-* bundles)")
    parser.add_argument("--recipe", type=Path, required=True, help="score on this recipe's val split")
    parser.add_argument("--name", default="runtime_precision")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args(argv)

    from edgeseg.bundle import artifact_path
    from edgeseg.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    data = recipe.data.model_dump(mode="json")
    # the runtimes' own tools first, then edgeseg's bench of each point
    offered = points(args.run)
    tools = {}
    for bundle, runtime, precision in offered:
        model = artifact_path(bundle)
        if runtime == "openvino":
            tools[bundle, runtime, precision] = {
                "benchmark_app_median_ms": benchmark_app(model, args.threads, precision, 10)
            }
        if runtime == "onnxruntime":
            tools[bundle, runtime, precision] = {
                "bare_onnxruntime_median_ms": bare_onnxruntime(model, args.threads, args.iterations)
            }
    rows = []
    for bundle, runtime, precision in offered:
        spec = BenchSpec(
            artifact=str(bundle), name=f"{bundle.name} [{runtime} {precision}]", runtime=runtime,
            precision_hint=precision if runtime == "openvino" else None, threads=args.threads,
            iterations=args.iterations, rounds=5, data=data, seed=recipe.seed,
        )  # fmt: skip
        (result,) = bench([spec])
        row = {
            "bundle": bundle.name,
            "runtime": runtime,
            "precision": precision,
            "session_precision": result["session"]["precision"],
            "p50_ms": result["latency"][0]["p50_ms"],
            "p99_ms": result["latency"][0]["p99_ms"],
            "peak_mb": result["memory"]["peak_mb"],
            "miou": result["accuracy"]["miou"],
        }
        rows.append(row | tools.get((bundle, runtime, precision), {}))
        print(json.dumps(row))
    out = {"benchmark": args.name, "run": str(args.run), "threads": args.threads, "rows": rows}
    out["environment"] = environment()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
