"""edgeseg's int8 artifacts against what a user would do instead, on the same fp32 ONNX.

    python benchmarks/int8_baselines.py runs/camvid_lraspp_efficientnet_lite0 \
        --recipe recipes/camvid_lraspp_efficientnet_lite0.yaml --name int8_baselines_camvid_lite0 --repeats 5

The alternatives, each with its library's defaults, calibrated on the images edgeseg calibrates
on (``export.calibration.num_samples`` training images, seeded as the export draws them):
- ONNX Runtime ``quantize_static(fp32.onnx, out, reader)``: QDQ, per-tensor, int8 activations
  and weights, MinMax. Run on ONNX Runtime and on OpenVINO (which reads the .onnx too). Again
  after ``quant_pre_process`` (the step ORT's own warning asks for), on ONNX Runtime.
- OpenVINO ``nncf.quantize(read_model(fp32.onnx), nncf.Dataset(...))``, saved with
  ``ov.save_model``. Run on OpenVINO.
edgeseg's: every int8 bundle under RUN (export-*-int8*) through each runtime that reads it.

Accuracy: mIoU on the recipe's val split through each runtime (once). Latency: p50 at batch 1
over --iterations calls in a fresh session, every candidate once per repeat in a rotating order;
reported as the median over repeats, and each candidate's ratio to the alternative on the same
runtime taken within each repeat (a pair shares the host's state), median over repeats.
Writes results/<name>.json with the environment, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"


def calibration_inputs(recipe, meta: dict) -> list[np.ndarray]:
    """The export's calibration images (seeded draw from train), as the fp32 graph takes them."""
    import torch

    from edgeseg.bundle import prepare
    from edgeseg.data import load_split
    from edgeseg.data.transforms import resize_images

    samples = load_split(recipe.data, "train", recipe.seed)
    count = min(recipe.export.calibration.num_samples, len(samples))
    pick = torch.randperm(len(samples), generator=torch.Generator().manual_seed(recipe.seed))[:count]
    images = resize_images([samples.images[i] for i in pick.tolist()], tuple(meta["input"]["size"]))
    return [prepare([image.permute(1, 2, 0).numpy()], meta) for image in images]


def ort_quantize_static(fp32: Path, out: Path, inputs: list[np.ndarray], pre_process: bool = False) -> float:
    """ONNX Runtime's static quantization with every default (after ``quant_pre_process``, its
    shape inference and graph optimisation, with ``pre_process``: what ORT's warning advises);
    returns the seconds it took."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, quant_pre_process, quantize_static

    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(inputs)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {name: batch}

    started = time.monotonic()
    if pre_process:
        quant_pre_process(str(fp32), str(out.with_suffix(".pre.onnx")))
        fp32 = out.with_suffix(".pre.onnx")
    quantize_static(str(fp32), str(out), Reader())
    return time.monotonic() - started


def nncf_quantize_default(fp32: Path, out: Path, inputs: list[np.ndarray]) -> float:
    """nncf.quantize on the OpenVINO model read from the .onnx, every default; seconds taken."""
    import nncf
    import openvino as ov

    started = time.monotonic()
    model = ov.Core().read_model(str(fp32))
    quantized = nncf.quantize(model, nncf.Dataset(inputs))
    ov.save_model(quantized, str(out))
    return time.monotonic() - started


def candidates(run: Path, alternatives: dict[str, Path]) -> list[dict]:
    """(name, model file, runtime, whose) for the alternatives and edgeseg's int8 bundles."""
    from edgeseg.bundle import artifact_path, read_sidecar
    from edgeseg.formats import FORMATS

    out = [
        {"name": "ort quantize_static", "path": alternatives["ort"], "runtime": "onnxruntime", "by": "onnxruntime"},
        {"name": "ort quantize_static", "path": alternatives["ort"], "runtime": "openvino", "by": "onnxruntime"},
        {"name": "nncf.quantize", "path": alternatives["nncf"], "runtime": "openvino", "by": "nncf"},
        {
            "name": "ort quant_pre_process + quantize_static",
            "path": alternatives["ort_pre"],
            "runtime": "onnxruntime",
            "by": "onnxruntime",
        },
    ]
    for bundle in sorted(p.parent for p in run.glob("export-*/model.json")):
        meta = read_sidecar(bundle)
        if meta["artifact"]["precision"] != "int8":
            continue
        for runtime in FORMATS[meta["artifact"]["format"]].runtimes:
            if runtime in ("onnxruntime", "openvino"):
                name = f"edgeseg {bundle.name.removeprefix('export-')} (target {meta['target']['name']})"
                out.append({"name": name, "path": artifact_path(bundle), "runtime": runtime, "by": "edgeseg"})
    return out


def accuracy(candidate: dict, images, masks, meta: dict, class_names: list[str]) -> float:
    from edgeseg.bench.accuracy import predict, score
    from edgeseg.runtimes.session import open_session

    session = open_session(candidate["path"], candidate["runtime"], threads=2)
    return score(predict(session.run, images, meta), masks, class_names)["miou"]


def p50_ms(candidate: dict, batch: np.ndarray, iterations: int, threads: int) -> float:
    """A fresh session: 1 s of warm-up, then the median of ``iterations`` timed calls."""
    from edgeseg.runtimes.session import open_session

    session = open_session(candidate["path"], candidate["runtime"], threads=threads)
    call = getattr(session, "infer", session.run)
    until = time.perf_counter() + 1.0
    while time.perf_counter() < until:
        call(batch)
    timings = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        call(batch)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(timings)


def latencies(chosen: list[dict], batch: np.ndarray, args) -> list[list[float]]:
    """Per repeat, every candidate's p50 (the order rotates each repeat)."""
    rows = []
    for repeat in range(args.repeats):
        shift = repeat % len(chosen)
        order = list(range(len(chosen)))[shift:] + list(range(len(chosen)))[:shift]
        row = [0.0] * len(chosen)
        for i in order:
            row[i] = p50_ms(chosen[i], batch, args.iterations, args.threads)
        rows.append(row)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{v:.2f}" for v in row), file=sys.stderr)
    return rows


def table(chosen: list[dict], mious: list[float], rows: list[list[float]]) -> list[dict]:
    """Per candidate: mIoU, median p50, and the median per-repeat ratio to the same runtime's
    alternative (ORT quantize_static on ONNX Runtime; nncf.quantize on OpenVINO)."""
    baseline = {"onnxruntime": 0, "openvino": 2}  # candidates() lists the alternatives first
    out = []
    for i, c in enumerate(chosen):
        base = baseline[c["runtime"]]
        ratios = [row[i] / row[base] for row in rows]
        out.append(
            {
                "name": c["name"],
                "by": c["by"],
                "runtime": c["runtime"],
                "file": Path(c["path"]).name,
                "miou": round(mious[i], 2),
                "p50_ms": round(statistics.median(row[i] for row in rows), 3),
                "vs_alternative_on_runtime": chosen[base]["name"],
                "miou_minus_alternative": round(mious[i] - mious[base], 2),
                "p50_ratio_to_alternative": round(statistics.median(ratios), 3),
                "p50_ratio_per_repeat": [round(r, 3) for r in ratios],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a build's runs/<name> folder (export-onnx-fp32 and int8 bundles)")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from edgeseg.bundle import artifact_path, read_sidecar
    from edgeseg.data import dataset_info, load_split
    from edgeseg.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    fp32_bundle = args.run / "export-onnx-fp32"
    meta = read_sidecar(fp32_bundle)
    val = load_split(recipe.data, "val", recipe.seed, arrays=True)
    class_names = list(dataset_info(recipe.data).class_names)
    inputs = calibration_inputs(recipe, meta)
    with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as tmp:
        fp32_file = artifact_path(fp32_bundle)
        alternatives = {"ort": Path(tmp) / "ort_static.onnx", "nncf": Path(tmp) / "nncf_default.xml"}
        alternatives["ort_pre"] = Path(tmp) / "ort_pre_static.onnx"
        seconds = {
            "ort quantize_static": ort_quantize_static(fp32_file, alternatives["ort"], inputs),
            "nncf.quantize": nncf_quantize_default(fp32_file, alternatives["nncf"], inputs),
            "ort quant_pre_process + quantize_static": ort_quantize_static(
                fp32_file, alternatives["ort_pre"], inputs, pre_process=True
            ),
        }
        chosen = candidates(args.run, alternatives)
        fp32 = {"name": "fp32", "path": artifact_path(fp32_bundle), "runtime": "onnxruntime", "by": "fp32"}
        fp32_miou = accuracy(fp32, val.images, val.masks, meta, class_names)
        mious = [accuracy(c, val.images, val.masks, meta, class_names) for c in chosen]
        batch = val_batch(val.images[0], meta)
        rows = latencies(chosen, batch, args)
    document = {
        "benchmark": "int8_baselines",
        "command": " ".join(sys.argv),
        "run": str(args.run),
        "recipe": str(args.recipe),
        "calibration_images": len(inputs),
        "val_images": len(val.images),
        "threads": args.threads,
        "repeats": args.repeats,
        "iterations": args.iterations,
        "quantize_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "fp32_miou": round(fp32_miou, 2),
        "rows": table(chosen, mious, rows),
        "raw_p50_ms": rows,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(document, indent=2))
    print(f"fp32 (ORT) mIoU {document['fp32_miou']}")
    print("| artifact | runtime | mIoU | p50 ms | vs the alternative on that runtime: mIoU, p50 ratio |")
    print("|---|---|---|---|---|")
    for r in document["rows"]:
        print(
            f"| {r['name']} | {r['runtime']} | {r['miou']:.2f} | {r['p50_ms']:.2f} | "
            f"{r['miou_minus_alternative']:+.2f}, {r['p50_ratio_to_alternative']:.3f} |"
        )
    print(f"-> {RESULTS / f'{args.name}.json'}")


def val_batch(image: np.ndarray, meta: dict) -> np.ndarray:
    from edgeseg.bundle import prepare

    return prepare([image], meta)


if __name__ == "__main__":
    main()
