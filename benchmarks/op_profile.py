"""Where the int8 time goes: a per-op profile of every CPU artifact of a run, beside fp32's.

    python benchmarks/op_profile.py runs/points/camvid_lraspp_efficientnet_lite0 \
        --also runs/heads/export-onnx-int8-stride2 --also runs/heads/export-openvino-int8-stride2 \
        --name op_profile_camvid_lite0

Points: every bundle under RUN through its format's own runtime, and each .onnx through
OpenVINO too (as a user could load it), then the ``--also`` bundles. Each point is one
``edgeseg bench --profile`` process on ``--threads``: batch-1 p50 and its compute floor, then
the runtime's own profiler in a second session (ONNX Runtime's trace, OpenVINO's per-layer
counters, ``edgeseg.bench.profile``). Op types are grouped into what issue 34 asks about: the
convolutions, the resize of the logits, (re)quantization, element-wise ops and layout changes.
Writes results/<name>.json with the environment, and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeseg.bench import BenchSpec, bench
from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"

# op type -> group, over both runtimes' names (ONNX Runtime's kernels; OpenVINO's layer types)
GROUPS = {
    "conv": {"Conv", "QLinearConv", "FusedConv", "ConvInteger", "Convolution", "GroupConvolution", "MatMulInteger"},
    "resize": {"Resize", "Upsample", "Interpolate"},
    "quantize": {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "FakeQuantize"},
    "elementwise": {"Add", "Mul", "QLinearAdd", "QLinearMul", "Eltwise", "Subgraph", "Clip", "HardSigmoid", "Sigmoid"},
    "layout": {"Transpose", "Reorder", "ReorderInput", "ReorderOutput", "Reshape", "Concat"},
}


def group_of(op_type: str) -> str:
    return next((name for name, types in GROUPS.items() if op_type in types), "other")


def points(run: Path, also: list[Path]) -> list[tuple[Path, str, str | None]]:
    """(bundle, runtime, OpenVINO precision hint): bf16 too where the bundle's target computes it."""
    from edgeseg.bundle import read_sidecar
    from edgeseg.formats import FORMATS

    out = []
    for bundle in [*sorted(p.parent for p in run.glob("export-*/model.json")), *also]:
        meta = read_sidecar(bundle)
        runtimes = [r for r in FORMATS[meta["artifact"]["format"]].runtimes if r in ("onnxruntime", "openvino")]
        out += [(bundle, runtime, None) for runtime in runtimes]
        if "openvino" in runtimes and "bf16" in meta.get("target", {}).get("compute", []):
            out.append((bundle, "openvino", "bf16"))
    return out


def profile_point(bundle: Path, runtime: str, hint: str | None, args) -> dict:
    spec = BenchSpec(
        artifact=str(bundle), name=f"{bundle.name}@{runtime}", runtime=runtime, threads=args.threads,
        iterations=args.iterations, rounds=5, profile=True, precision_hint=hint,
    )  # fmt: skip
    result = bench([spec])[0]
    profile, floor = result["profile"], result["floor"] or {}
    groups = dict.fromkeys([*GROUPS, "other"], 0.0)
    for row in profile["by_type"]:
        groups[group_of(row["op_type"])] += row["ms"]
    return {
        "bundle": str(bundle),
        "runtime": runtime,
        "precision": result["artifact"]["precision"],
        "computes": result["session"]["precision"],
        "p50_ms": result["latency"][0]["p50_ms"],
        "compute_floor_ms": floor.get("compute_floor_ms"),
        "p50_over_floor": floor.get("p50_over_floor"),
        "profiled_call_ms": profile["call_ms"],
        "ops_ms": profile["ops_ms"],
        "groups_ms": {name: round(ms, 3) for name, ms in groups.items()},
        "by_type": profile["by_type"],
        "top_nodes": profile["top_nodes"][:10],
    }


def _print(row: dict, repeat: int) -> None:
    groups = "  ".join(f"{k} {v:.2f}" for k, v in row["groups_ms"].items() if v)
    head = f"[{repeat}] {Path(row['bundle']).name}@{row['runtime']} ({row['computes']}): p50 {row['p50_ms']:.2f} ms"
    print(f"{head}, {row['p50_over_floor']}x floor; {groups}", flush=True)


def _median_row(runs: list[dict]) -> dict:
    """The repeat with the median p50 (its profile as measured), and every repeat's p50."""
    ranked = sorted(runs, key=lambda row: row["p50_ms"])
    return {**ranked[len(ranked) // 2], "p50_ms_repeats": [row["p50_ms"] for row in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--also", type=Path, action="append", default=[], help="more bundles to profile")
    parser.add_argument("--name", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every point, the order rotating")
    args = parser.parse_args()
    todo = points(args.run, args.also)
    repeats: list[dict[int, dict]] = []
    for repeat in range(args.repeats):
        shift = repeat % len(todo)
        order = list(range(len(todo)))[shift:] + list(range(len(todo)))[:shift]
        repeats.append({i: profile_point(*todo[i], args) for i in order})
        for i in order:
            _print(repeats[-1][i], repeat)
    rows = [_median_row([done[i] for done in repeats]) for i in range(len(todo))]
    document = {"threads": args.threads, "repeats": args.repeats, "groups": {k: sorted(v) for k, v in GROUPS.items()}}
    document["points"] = rows
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps({**document, "environment": environment()}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
