"""The remote bench against the local bench of the same bundles, in the same run.

    EDGESEG_DATA=../shared/data python benchmarks/remote_bench.py runs/x/deploy runs/x/export-onnx-fp32 \
        --recipe recipes/camvid_lite0_budget.yaml --split fold --name remote_vs_local_camvid

The "device" is this machine reached over SSH: a real OpenSSH server on 127.0.0.1 with a
throwaway key (tests/loopback_sshd.py) and a separate venv with the torch-free
``edgeseg[bench]``. Local and remote benches alternate (``--repeats`` times each, same threads,
iterations and rounds) so that drift hits both alike. The remote path should cost nothing in the
figures: the latency and memory are measured by the same code in a fresh process either way,
and accuracy on the same pixels (the images travel as lossless PNGs). The check: the difference
of the median p50s against the measured noise (2 sigma of the run-to-run spread, pooled).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeseg.bench.environment import environment

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(REPO / "tests"))
import loopback_sshd  # noqa: E402  (the same server the tests use)


def device_venv(root: Path) -> Path:
    venv = root / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{REPO}[bench]"], check=True)
    return venv


def bench(bundles: list[Path], common: list[str], out: Path, remote: list[str]) -> list[dict]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "edgeseg", "bench", *map(str, bundles), *common, *remote, "--json", str(out)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    results = json.loads(out.read_text())["results"]
    for r in results:
        r["_wall_s"] = round(time.monotonic() - started, 1)
    return results


def figures(result: dict) -> dict:
    latency = next(row for row in result["latency"] if row["batch"] == 1)
    return {
        "p50_ms": latency["p50_ms"],
        "p50_cv": latency["p50_cv"],
        "peak_mb": result["memory"]["peak_mb"],
        "miou": (result["accuracy"] or {}).get("miou"),
        "runtime": result["session"]["runtime"],
        "versions": {k: v for k, v in result["environment"]["versions"].items() if k in ("onnxruntime", "openvino")},
        "torch_on_the_bench_side": "torch" in result["environment"]["versions"],
    }


def compare(local: list[dict], remote: list[dict]) -> dict:
    p_local, p_remote = [r["p50_ms"] for r in local], [r["p50_ms"] for r in remote]
    spread = statistics.pstdev(p_local + p_remote) if len(p_local) > 1 else 0.0
    within_run = statistics.mean([r["p50_ms"] * (r["p50_cv"] or 0) for r in local + remote])
    sigma = max(spread, within_run)
    diff = statistics.median(p_remote) - statistics.median(p_local)
    return {
        "local_p50_ms": p_local,
        "remote_p50_ms": p_remote,
        "median_difference_ms": round(diff, 3),
        "relative_difference": round(diff / statistics.median(p_local), 4),
        "sigma_ms": round(sigma, 3),
        "agree_within_2_sigma": abs(diff) <= 2 * sigma,
        "miou_local": sorted({r["miou"] for r in local}),
        "miou_remote": sorted({r["miou"] for r in remote}),
        "peak_mb_local": [r["peak_mb"] for r in local],
        "peak_mb_remote": [r["peak_mb"] for r in remote],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--name", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    common = ["--recipe", str(args.recipe), "--split", args.split, "--threads", str(args.threads)]
    common += ["--iterations", "100", "--rounds", "5"]
    names = [b.name for b in args.bundles]
    runs: dict[str, dict[str, list]] = {n: {"local": [], "remote": []} for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        venv = device_venv(root)
        install_s = time.monotonic() - started
        server = loopback_sshd.start(root)
        remote = ["--remote", "device", "--ssh-config", str(server.config)]
        remote += ["--remote-edgeseg", str(venv / "bin" / "edgeseg")]
        try:
            for i in range(args.repeats):
                order = [("local", []), ("remote", remote)]
                for side, extra in order if i % 2 == 0 else order[::-1]:
                    results = bench(args.bundles, common, root / f"{side}-{i}.json", extra)
                    for name, result in zip(names, results, strict=True):
                        runs[name][side].append({**figures(result), "wall_s": result["_wall_s"]})
                        print(side, name, json.dumps(runs[name][side][-1]), flush=True)
        finally:
            server.stop()
    document = {
        "benchmark": "remote_bench",
        "bundles": [str(b) for b in args.bundles],
        "split": args.split,
        "settings": {"threads": args.threads, "iterations": 100, "rounds": 5, "repeats": args.repeats},
        "device": "this machine over SSH to 127.0.0.1 (OpenSSH), device venv with edgeseg[bench] (no torch)",
        "device_venv_install_s": round(install_s, 1),
        "runs": runs,
        "comparison": {name: compare(r["local"], r["remote"]) for name, r in runs.items()},
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(document, indent=2))
    print(json.dumps(document["comparison"], indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
