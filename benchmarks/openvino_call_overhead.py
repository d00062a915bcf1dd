"""What a Python call adds to OpenVINO's own inference time, the way edgeseg calls it and the old way.

    python benchmarks/openvino_call_overhead.py runs/quickstart/export-openvino-int8/model.xml \
        runs/quickstart/export-openvino-fp16-x86-bf16/model.xml --name openvino_call_overhead_quickstart

For each model and precision, in one process, interleaved rounds of:
- ``edgeseg``: ``OpenVINOSession.infer`` (input bound once per buffer, ``start_async`` + ``wait``);
- ``infer_dict``: ``request.infer({0: x}, share_inputs=True, share_outputs=True)``, the call
  edgeseg made before (it wraps the array and builds the outputs' dict on every call);
Each call's wall time less the request's own ``latency`` (measured inside OpenVINO, as
``benchmark_app`` reports it) is what the Python call adds: its median per way, in us. Then
``benchmark_app`` on the same file and threads; p50s in ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgeseg.bench.environment import environment

sys.path.insert(0, str(Path(__file__).parent))
from runtime_precision import benchmark_app  # noqa: E402  (the same invocation of OpenVINO's tool)

RESULTS = Path(__file__).parent / "results"


def measure(model: Path, precision: str, threads: int, iterations: int, rounds: int) -> dict:
    from edgeseg.runtimes.openvino_rt import OpenVINOSession

    session = OpenVINOSession(model, threads=threads, precision_hint=precision)
    request = session._request  # the session's own request: the same compiled model for both calls
    x = np.random.default_rng(0).standard_normal(tuple(d or 1 for d in session.input.shape)).astype(np.float32)

    def dict_call():
        request.infer({0: x}, share_inputs=True, share_outputs=True)
        session._bound = None  # the dict call replaced the bound input tensor

    calls = {"edgeseg": lambda: session.infer(x), "infer_dict": dict_call}
    wall: dict = {name: [] for name in calls}
    over: dict = {name: [] for name in calls}  # per call: wall time minus OpenVINO's own latency
    for call in calls.values():  # warm-up
        for _ in range(20):
            call()
    for _ in range(rounds):  # interleaved, so the host's drift hits both alike
        for name, call in calls.items():
            for _ in range(iterations // rounds):
                started = time.perf_counter_ns()
                call()
                ms = (time.perf_counter_ns() - started) / 1e6
                wall[name].append(ms)
                over[name].append(ms - request.latency)
    tool_ms = benchmark_app(model, threads, precision, 10)
    row = {"model": str(model), "precision": precision, "benchmark_app_median_ms": tool_ms}
    for name in calls:
        p50 = float(np.median(wall[name]))
        row[f"{name}_p50_ms"] = round(p50, 4)
        row[f"{name}_over_openvino_own_us"] = round(float(np.median(over[name])) * 1e3, 1)
        row[f"{name}_over_benchmark_app"] = round(p50 / tool_ms, 3) if tool_ms else None
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="OpenVINO IRs (.xml) or .onnx files")
    parser.add_argument("--name", default="openvino_call_overhead")
    parser.add_argument("--precisions", nargs="+", default=["f32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for model in args.models:
        for precision in args.precisions:
            rows.append(measure(model, precision, args.threads, args.iterations, args.rounds))
            print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": args.name, "threads": args.threads, "rows": rows, "environment": environment()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
