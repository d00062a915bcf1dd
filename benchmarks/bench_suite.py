"""Every bundle of a build, measured with `edgeseg bench`, compared side by side; plus repeatability.

    python benchmarks/bench_suite.py runs/quickstart --recipe recipes/quickstart.yaml --name bench_quickstart
    python benchmarks/bench_suite.py runs/benchmarks/camvid_prune/export \
        --recipe recipes/camvid_lraspp_efficientnet_lite0.yaml --name bench_camvid_lite0

For each bundle under DIR (a directory with model.json): latency at batch 1 in its own runtime
(fresh process, pinned threads), memory and val accuracy, all through `edgeseg.bench`. Then:
- ratios: each artifact's p50 against the fp32 artifact of the same runtime and against ONNX
  Runtime fp32, so runtimes and precisions compare within one run on one machine;
- the compute floor: the artifact's MACs divided by this machine's measured peak (an ONNX
  Runtime GEMM at fp32, and MatMulInteger at int8, on the same threads), i.e. the latency if
  every MAC ran at peak; p50 / floor says how far from compute-bound each artifact is;
- repeatability: the whole batch-1 measurement repeated --repeats times, each in a fresh process,
  interleaved across artifacts; the coefficient of variation of p50 across those runs (the
  harness's target is < 5%). The headline p50 and every ratio use the median of the repeats: on
  a shared host the machine's speed drifts between processes far more than within one.
Writes results/<name>.json (with the environment) and results/<name>.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from edgeseg.bench import BenchSpec, bench, run_isolated
from edgeseg.bench.environment import environment
from edgeseg.bench.floor import peak_gmacs

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a directory whose subdirectories are bundles")
    parser.add_argument("--recipe", type=Path, help="score accuracy on this recipe's val split")
    parser.add_argument("--name", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-images", type=int)
    parser.add_argument(
        "--baseline",
        help="the fp32 artifact ratios compare with (a substring of its name) [default: the first fp32 per runtime]",
    )
    parser.add_argument(
        "--reference",
        help="the bundle pixel agreement is measured against (a substring of its name) [default: the onnx fp32 one]",
    )
    args = parser.parse_args(argv)

    bundles = sorted(p.parent for p in args.runs.glob("*/model.json"))
    data, seed = None, 0
    if args.recipe:
        from edgeseg.recipe import load_recipe

        recipe = load_recipe(args.recipe)
        data, seed = recipe.data.model_dump(mode="json"), recipe.seed
    common = {"threads": args.threads, "iterations": args.iterations, "rounds": 5, "warmup": 10}
    specs = [
        BenchSpec(artifact=str(b), name=b.name, data=data, seed=seed, max_images=args.max_images, **common)
        for b in bundles
    ]
    reference = next((s for s in specs if (args.reference or "onnx-fp32") in s.name), None)
    results = bench([s for s in specs if s is not reference], reference)
    repeats = {r["name"]: [r["latency"][0]["p50_ms"]] for r in results}
    for _ in range(args.repeats - 1):
        for spec in specs:  # interleaved: drift of the machine hits every artifact alike
            repeats[spec.name].append(
                run_isolated(BenchSpec(artifact=spec.artifact, name=spec.name, **common))["latency"][0]["p50_ms"]
            )
    peaks = {p: peak_gmacs(args.threads, p, seconds=3.0) for p in ("fp32", "int8")}

    by_name = {r["name"]: r for r in results}
    median_p50 = {name: statistics.median(runs) for name, runs in repeats.items()}

    def baseline(runtime: str | None) -> str | None:
        """The fp32 artifact to compare with: the one --baseline names (or the first fp32) of that runtime."""
        fp32 = [
            r
            for r in results
            if r["artifact"]["precision"] == "fp32"
            and r["session"]["runtime"] != "torch"
            and (runtime is None or r["session"]["runtime"] == runtime)
        ]
        named = [r for r in fp32 if args.baseline and args.baseline in r["name"]]
        return (named or fp32 or [{"name": None}])[0]["name"]

    rows = []
    for r in results:
        name, precision, runtime = r["name"], r["artifact"]["precision"], r["session"]["runtime"]
        p50, same, ort = median_p50[name], baseline(runtime), baseline("onnxruntime")
        gmacs = r["model"].get("gmacs")
        floor = gmacs / peaks["int8" if precision == "int8" else "fp32"] * 1000 if gmacs else None
        runs = repeats[name]
        rows.append(
            {
                "name": name,
                "format": r["artifact"]["format"],
                "precision": precision,
                "runtime": runtime,
                "compute_precision": r["session"]["precision"],
                "p50_ms": round(p50, 3),
                "p50_ms_repeats": runs,
                "p99_ms_first_run": r["latency"][0]["p99_ms"],
                "within_run_cv": r["latency"][0]["p50_cv"],
                "across_runs_cv": round(statistics.pstdev(runs) / statistics.mean(runs), 4) if len(runs) > 1 else None,
                "baseline_same_runtime": same,
                "vs_same_runtime_fp32": round(p50 / median_p50[same], 3) if same else None,
                "vs_onnxruntime_fp32": round(p50 / median_p50[ort], 3) if ort else None,
                "gmacs": gmacs,
                "compute_floor_ms": round(floor, 3) if floor else None,
                "p50_over_floor": round(p50 / floor, 1) if floor else None,
                "peak_mem_mb": r["memory"]["peak_mb"],
                "size_mb": r["artifact"]["size_mb"],
                "miou": (r["accuracy"] or {}).get("miou"),
                "agreement_with_reference": (r["accuracy"] or {}).get("agreement_with_reference"),
            }
        )
    out = {
        "benchmark": "bench_suite",
        "command": "python benchmarks/bench_suite.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "peak_gmacs_per_s": {k: round(v, 1) for k, v in peaks.items()},
        "table": rows,
        "results": list(by_name.values()),
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2))
    (RESULTS / f"{args.name}.md").write_text(markdown(out, args))
    print((RESULTS / f"{args.name}.md").read_text())
    return out


def markdown(out: dict, args) -> str:
    env = out["environment"]
    lines = [
        f"# `edgeseg bench` suite: {args.name}",
        "",
        f"{env['cpu']} ({', '.join(env['cpu_flags'])}), {args.threads} threads pinned, batch 1, "
        f"{args.iterations} timed calls in 5 rounds after warm-up, each artifact in a fresh process; "
        f"repeated {args.repeats}x, interleaved. p50 is the median of the repeats' p50s, and ratios use it. "
        f"Measured peak: {out['peak_gmacs_per_s']['fp32']} GMAC/s fp32, {out['peak_gmacs_per_s']['int8']} GMAC/s int8 "
        "(ONNX Runtime GEMM). The compute floor is GMACs / peak.",
        "",
        f"Command: `{out['command']}`",
        "",
        "| artifact | runtime (computes in) | p50 ms | p50 of each run | ×same-runtime fp32 | ×ORT fp32 | GMACs "
        "| compute floor ms | p50/floor | CV in run | CV across runs | peak MB | mIoU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["table"]:

        def f(v, d=2, pct=False):
            return "–" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.{d}f}")

        lines.append(
            f"| {r['name']} | {r['runtime']} ({r['compute_precision']}) | {f(r['p50_ms'])} "
            f"| {', '.join(f(v) for v in r['p50_ms_repeats'])} | {f(r['vs_same_runtime_fp32'])} "
            f"| {f(r['vs_onnxruntime_fp32'])} | {f(r['gmacs'], 3)} | {f(r['compute_floor_ms'], 3)} "
            f"| {f(r['p50_over_floor'], 1)} | {f(r['within_run_cv'], pct=True)} | "
            f"{f(r['across_runs_cv'], pct=True)} | {f(r['peak_mem_mb'], 0)} | {f(r['miou'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
