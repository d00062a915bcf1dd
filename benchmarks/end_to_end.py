"""Frame to class map: the latency a user feels, beside model-only latency, and a video clip.

    python benchmarks/end_to_end.py runs/camvid_lraspp_efficientnet_lite0 \
        --recipe recipes/camvid_lite0.yaml --name end_to_end_camvid_lite0 --repeats 3

Points: every int8 bundle under RUN through its format's own runtime, the .onnx int8 through
OpenVINO too, and onnx-fp32 for comparison. Each repeat (the order rotates) runs, per point and
frame encoding (JPEG q90 as a camera sends, PNG as CamVid is stored), one ``edgeseg bench
--end-to-end`` process: model-only p50 at batch 1 and the deployment kit's path, decode to
colour, on the recipe's val images, in the same process one after the other. Then the kit runs a
``--clip-seconds`` 480x360 H.264 clip made from those images (30 fps) in a fresh process: wall
frames per second, with decoding and encoding the overlay and the class-id stream.

Targets (issue 34): end-to-end p50 <= 1.3x model-only p50; the clip at >= 0.75x model-only FPS.
The preprocessing variants the kit could use are timed on one image in this process. Writes
results/<name>.json with the environment, and prints the table.
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

import numpy as np

from edgeseg.bench import BenchSpec, bench
from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"
KIT = Path(__file__).resolve().parents[1] / "export" / "python" / "segment.py"
ENCODINGS = ("jpeg", "png")
TARGET_RATIO, TARGET_CLIP = 1.3, 0.75


def points(run: Path) -> list[tuple[Path, str]]:
    """(bundle, runtime): int8 bundles through their own runtime, onnx-int8 through OpenVINO too,
    and onnx-fp32."""
    from edgeseg.bundle import read_sidecar
    from edgeseg.formats import FORMATS

    out = []
    for bundle in sorted(p.parent for p in run.glob("export-*/model.json")):
        meta = read_sidecar(bundle)["artifact"]
        if meta["precision"] == "int8" or (meta["format"], meta["precision"]) == ("onnx", "fp32"):
            out.append((bundle, FORMATS[meta["format"]].runtimes[0]))
            if meta["format"] == "onnx" and meta["precision"] == "int8":
                out.append((bundle, "openvino"))
    return out


def make_clip(path: Path, data: dict, seed: int, seconds: int) -> dict:
    """A 30 fps H.264 clip (CRF 18) of the val images in order, cycling: 480x360 for CamVid."""
    import av

    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    images = load_split(DataSpec.model_validate(data), "val", seed, arrays=True).images
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(30 * seconds):
            frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {"frames": 30 * seconds, "size": [height, width], "fps": 30, "codec": "h264 crf 18", "mb": _mb(path)}


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


def clip_worker(bundle: str, runtime: str, clip: str, out: str, threads: int) -> None:
    """In a fresh process: the kit on the clip; prints its summary as JSON."""
    sys.path.insert(0, str(KIT.parent))
    import segment as kit

    segmenter = kit.Segmenter(bundle, runtime, threads, video=True)
    summary = kit.segment_video(segmenter, clip, Path(out))
    print(json.dumps(summary))


def run_clip(bundle: Path, runtime: str, clip: Path, threads: int, scratch: Path) -> dict:
    command = [sys.executable, __file__, "--clip-worker", str(bundle), runtime, str(clip), str(scratch), str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_point(bundle: Path, runtime: str, encoding: str, data: dict, args) -> dict:
    spec = BenchSpec(
        artifact=str(bundle), name=f"{bundle.name}@{runtime}", runtime=runtime, threads=args.threads,
        iterations=args.iterations, rounds=5, data=data, split="val", seed=args.seed,
        end_to_end=True, frame_encoding=encoding,
    )  # fmt: skip
    result = bench([spec])[0]
    section = result["end_to_end"]
    return {
        "model_only_p50_ms": result["latency"][0]["p50_ms"],
        "miou": result["accuracy"]["miou"],
        "stages_p50_ms": {k: v["p50_ms"] for k, v in section["stages"].items()},
        "total_p50_ms": section["total"]["p50_ms"],
        "total_p99_ms": section["total"]["p99_ms"],
        "fps": section["fps"],
        "ratio_p50": section["ratio_p50"],
    }


def preprocessing_variants(bundle: Path, data: dict, seed: int, repeats: int = 200) -> dict:
    """The kit's input stage three ways on one val image, p50 ms: the formula as numpy reads it
    (x / 255 - mean) / std then the transpose, the one-pass multiply-add the kit uses, and a
    256-entry table per channel (what the kit uses for int8 inputs)."""
    sys.path.insert(0, str(KIT.parent))
    import segment as kit

    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    rgb = load_split(DataSpec.model_validate(data), "val", seed, arrays=True).images[0]
    segmenter = kit.Segmenter(bundle)
    pre = segmenter.meta["input"]["preprocessing"]
    mean, std = np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)
    table = ((np.arange(256, dtype=np.float32)[None] / 255 - mean[:, None]) / std[:, None]).astype(np.float32)
    out = np.empty((3, *rgb.shape[:2]), np.float32)

    def formula():
        return np.ascontiguousarray(((rgb.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None])

    def lookup():
        for c in range(3):
            np.take(table[c], rgb[..., c], out=out[c])

    variants = {"formula_then_transpose": formula, "one_pass_multiply_add": lambda: segmenter._tensor(rgb)}
    variants["table_per_channel"] = lookup
    timings = {}
    for name, function in variants.items():
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            samples.append((time.perf_counter() - started) * 1e3)
        timings[name] = round(statistics.median(samples), 3)
    return timings


def summarise(point_runs: list[dict], clips: list[dict]) -> dict:
    """Medians over repeats; the ratios are medians of each repeat's own ratio (same host state)."""
    out = {"model_only_p50_ms": statistics.median(r["jpeg"]["model_only_p50_ms"] for r in point_runs)}
    out["miou"] = point_runs[0]["jpeg"]["miou"]
    for encoding in ENCODINGS:
        runs = [r[encoding] for r in point_runs]
        stages = runs[0]["stages_p50_ms"]
        out[encoding] = {
            "stages_p50_ms": {s: round(statistics.median(r["stages_p50_ms"][s] for r in runs), 3) for s in stages},
            "total_p50_ms": round(statistics.median(r["total_p50_ms"] for r in runs), 3),
            "total_p99_ms": round(statistics.median(r["total_p99_ms"] for r in runs), 3),
            "ratio_p50": round(statistics.median(r["ratio_p50"] for r in runs), 3),
            "ratio_p50_per_repeat": [r["ratio_p50"] for r in runs],
        }
    ratios = [c["wall_fps"] / (1e3 / r["jpeg"]["model_only_p50_ms"]) for c, r in zip(clips, point_runs, strict=True)]
    out["clip"] = {
        "wall_fps": round(statistics.median(c["wall_fps"] for c in clips), 1),
        "stages_p50_ms": {
            s: round(statistics.median(c["stages"][s]["p50_ms"] for c in clips), 3) for s in clips[0]["stages"]
        },
        "fps_over_model_only_fps": round(statistics.median(ratios), 3),
        "per_repeat": [round(r, 3) for r in ratios],
    }
    out["meets"] = {
        "jpeg_end_to_end": out["jpeg"]["ratio_p50"] <= TARGET_RATIO,
        "png_end_to_end": out["png"]["ratio_p50"] <= TARGET_RATIO,
        "clip": out["clip"]["fps_over_model_only_fps"] >= TARGET_CLIP,
    }
    return out


def main() -> None:
    if sys.argv[1:2] == ["--clip-worker"]:
        clip_worker(*sys.argv[2:6], int(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a build's runs/<name> folder (its export-* bundles)")
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe whose val images are the frames")
    parser.add_argument("--name", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--clip-seconds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from edgeseg.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    data = recipe.data.model_dump(mode="json")
    chosen = points(args.run)
    with tempfile.TemporaryDirectory(prefix="edgeseg-e2e-") as tmp:
        document = measure_all(chosen, data, args, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(document, indent=2))
    print_table(document["points"])
    print(f"-> {RESULTS / f'{args.name}.json'}")


def measure_all(chosen: list[tuple[Path, str]], data: dict, args, scratch: Path) -> dict:
    clip = scratch / "clip.mp4"
    clip_facts = make_clip(clip, data, args.seed, args.clip_seconds)
    runs = {f"{b.name}@{rt}": [] for b, rt in chosen}
    clips = {name: [] for name in runs}
    started = time.time()
    for repeat in range(args.repeats):
        order = chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]
        for bundle, runtime in order:
            name = f"{bundle.name}@{runtime}"
            runs[name].append({e: bench_point(bundle, runtime, e, data, args) for e in ENCODINGS})
            clips[name].append(run_clip(bundle, runtime, clip, args.threads, scratch))
            print(f"repeat {repeat + 1}: {name} done ({time.time() - started:.0f} s)", file=sys.stderr)
    results = {name: summarise(runs[name], clips[name]) for name in runs}
    return {
        "benchmark": "end_to_end",
        "command": " ".join(sys.argv),
        "run": str(args.run),
        "recipe": str(args.recipe),
        "threads": args.threads,
        "repeats": args.repeats,
        "clip": clip_facts,
        "targets": {"end_to_end_over_model_only_p50": TARGET_RATIO, "clip_fps_over_model_only_fps": TARGET_CLIP},
        "preprocessing_ms": preprocessing_variants(chosen[0][0], data, args.seed),
        "points": results,
        "raw": {"bench": runs, "clip": clips},
        "seconds": round(time.time() - started),
        "environment": environment(),
    }


def print_table(results: dict) -> None:
    print("| point | mIoU | model-only p50 | jpeg e2e p50 (x) | png e2e p50 (x) | clip FPS (x model-only FPS) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['miou']:.2f} | {r['model_only_p50_ms']:.2f} | {r['jpeg']['total_p50_ms']:.2f} "
            f"({r['jpeg']['ratio_p50']:.2f}) | {r['png']['total_p50_ms']:.2f} ({r['png']['ratio_p50']:.2f}) | "
            f"{r['clip']['wall_fps']:.1f} ({r['clip']['fps_over_model_only_fps']:.2f}) |"
        )


if __name__ == "__main__":
    main()
