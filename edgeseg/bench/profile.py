"""Where an artifact's time goes: a per-op profile from the runtime's own profiler.

ONNX Runtime's profiler (``SessionOptions.enable_profiling``: one ``<node>_kernel_time`` event
per node per call) and OpenVINO's per-layer performance counters (``PERF_COUNT``: each layer's
real time and the primitive it ran, e.g. ``jit_avx512_I8`` or ``ref_any``) are read the same way:
milliseconds per call, by op type and for the slowest nodes. The profiled session is a second
session, opened after timing, so that the profiler's overhead never touches the latency figures;
its per-call total is reported beside the op sum (the difference is the executor's own time).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

PROFILED_CALLS = 20
WARMUP_CALLS = 5
TOP_NODES = 15
RUNTIMES = ("onnxruntime", "openvino")  # the runtimes whose profilers this reads


def op_profile(
    path: Path,
    runtime: str,
    threads: int | None,
    batch: np.ndarray,
    precision_hint: str | None = None,
    calls: int = PROFILED_CALLS,
) -> dict:
    """Per-call ms by op type and the ``TOP_NODES`` slowest nodes, or why it was skipped.
    ``precision_hint`` is OpenVINO's, as the timed session had it."""
    if runtime == "onnxruntime":
        nodes, run_ms = _onnxruntime_ops(path, threads, batch, calls)
    elif runtime == "openvino":
        nodes, run_ms = _openvino_ops(path, threads, precision_hint, batch, calls)
    else:
        return {"skipped": f"per-op profiles read {' and '.join(RUNTIMES)}' profilers; this is {runtime}"}
    return _summary(runtime, nodes, run_ms, calls)


def _onnxruntime_ops(path: Path, threads: int | None, batch: np.ndarray, calls: int) -> tuple[list[dict], float]:
    """Node events of the timed calls only: warm-up calls are in the trace too, so the events
    before the first timed call's ``model_run`` are dropped."""
    from edgeseg.runtimes.onnxruntime_rt import OnnxRuntimeSession

    with tempfile.TemporaryDirectory(prefix="edgeseg-profile-") as scratch:
        session = OnnxRuntimeSession(path, threads=threads, profile_prefix=str(Path(scratch) / "ort"))
        for _ in range(WARMUP_CALLS + calls):
            session.run(batch)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"), key=lambda e: e["ts"])
    timed = runs[-calls:]
    start = timed[0]["ts"]
    nodes = [
        {
            "name": e["name"].removesuffix("_kernel_time"),
            "op_type": e["args"]["op_name"],
            "kernel": e["args"].get("provider", ""),
            "ms": e["dur"] / 1e3,
        }
        for e in events
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start
    ]
    return nodes, sum(e["dur"] for e in timed) / 1e3


def _openvino_ops(
    path: Path, threads: int | None, precision_hint: str | None, batch: np.ndarray, calls: int
) -> tuple[list[dict], float]:
    """OpenVINO keeps the last call's counters: read them after each call. Layers the plugin
    fused away (status OPTIMIZED_OUT) or skipped report no time and are left out."""
    import time

    from edgeseg.runtimes.openvino_rt import OpenVINOSession

    session = OpenVINOSession(path, threads=threads, precision_hint=precision_hint, profile=True)
    for _ in range(WARMUP_CALLS):
        session.infer(batch)
    nodes, run_ms = [], 0.0
    for _ in range(calls):
        start = time.perf_counter()
        session.infer(batch)
        run_ms += (time.perf_counter() - start) * 1e3
        nodes += [
            {"name": info.node_name, "op_type": info.node_type, "kernel": info.exec_type, "ms": _ms(info.real_time)}
            for info in session.profiling_info()
            if str(info.status).rsplit(".", 1)[-1] == "EXECUTED"
        ]
    return nodes, run_ms


def _ms(duration) -> float:
    return duration.total_seconds() * 1e3


def _summary(runtime: str, nodes: list[dict], run_ms: float, calls: int) -> dict:
    """Per call: the sum of op times, the whole call, each op type's share, the slowest nodes."""
    by_type: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "nodes": set(), "kernels": set()})
    by_node: dict[tuple[str, str, str], float] = defaultdict(float)
    for node in nodes:
        entry = by_type[node["op_type"]]
        entry["ms"] += node["ms"] / calls
        entry["nodes"].add(node["name"])
        entry["kernels"].add(node["kernel"])
        by_node[(node["name"], node["op_type"], node["kernel"])] += node["ms"] / calls
    ops_ms = sum(entry["ms"] for entry in by_type.values())
    types = sorted(by_type.items(), key=lambda item: -item[1]["ms"])
    top = sorted(by_node.items(), key=lambda item: -item[1])[:TOP_NODES]
    return {
        "runtime": runtime,
        "calls": calls,
        "call_ms": round(run_ms / calls, 4),
        "ops_ms": round(ops_ms, 4),
        "by_type": [
            {
                "op_type": name,
                "ms": round(entry["ms"], 4),
                "share": round(entry["ms"] / ops_ms, 4) if ops_ms else 0.0,
                "nodes": len(entry["nodes"]),
                "kernels": sorted(entry["kernels"]),
            }
            for name, entry in types
        ],
        "top_nodes": [
            {"name": name, "op_type": op_type, "kernel": kernel, "ms": round(ms, 4)}
            for (name, op_type, kernel), ms in top
        ],
    }


def profile_lines(profile: dict, top: int = 6) -> list[str]:
    """A few lines for the console: the op types that take the most of a call."""
    if "skipped" in profile:
        return [f"profile: {profile['skipped']}"]
    head = f"profile ({profile['runtime']}, {profile['calls']} calls): "
    head += f"ops {profile['ops_ms']:.2f} ms of a {profile['call_ms']:.2f} ms call"
    rows = [
        f"  {row['op_type']:<24} {row['ms']:7.3f} ms {row['share'] * 100:5.1f}%  x{row['nodes']}"
        for row in profile["by_type"][:top]
    ]
    return [head, *rows]
