"""How calibration sets the mIoU that pt2e int8 (ExecuTorch's and LiteRT's flow) loses.

    EDGESEG_DATA=../shared/data python benchmarks/pt2e_calibration.py runs/x/train/best.pt \
        --recipe recipes/camvid_lraspp_efficientnet_lite0.yaml --name pt2e_calibration_camvid_lite0

Plain PTQ (XNNPACK's quantizer: per-channel symmetric int8 weights, per-tensor int8 activations)
is scored in PyTorch (the converted module, whose quantize/dequantize ops are the artifact's
reference) on the recipe's selection split, against the fp32 model on the same images, for:

- where a ReLU6 is quantized: after its clamp (edgeseg's ``ClampsAfterConvs``, the default) or
  before it, on the conv's output (the quantizer left alone);
- the activation observer: XNNPACK's default ``HistogramObserver`` (an L2-optimal range over a
  histogram it rebuilds as the range grows), ``MinMaxObserver``, ``MovingAverageMinMaxObserver``;
- how the calibration images are fed: one per call (what the export does), or in batches;
- how many, and which: ``--counts`` images, ``--draws`` seeded draws from the training split.

Writes results/<name>.json with the environment and prints one line per configuration.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from edgeseg.bench.environment import environment
from edgeseg.exporters.pt2e import ClampsAfterConvs

RESULTS = Path(__file__).parent / "results"


def quantizer(observer: str, clamps: str):
    """XNNPACK's static per-channel config with the activation observer swapped."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationConfig

    config = get_symmetric_quantization_config(is_per_channel=True)
    constructor = {
        "histogram": HistogramObserver,
        "minmax": MinMaxObserver,
        "moving_average": MovingAverageMinMaxObserver,
    }[observer]
    act = copy.copy(config.input_activation)
    act = type(act)(**{**act.__dict__, "observer_or_fake_quant_ctr": constructor.with_args(eps=2**-12)})
    custom = QuantizationConfig(act, act, config.weight, config.bias, config.is_qat)
    inner = XNNPACKQuantizer().set_global(custom)
    return ClampsAfterConvs(inner) if clamps == "after" else inner


# NNCF's PTQ on the same quantizer's annotations (nncf.experimental.torch.fx.quantize_pt2e):
# its own range estimators, then bias correction (fast, full) or none
NNCF = {"nncf_fast_bias_correction": True, "nncf_bias_correction": False, "nncf_no_bias_correction": None}


def calibrated(job, observer: str, clamps: str, images: torch.Tensor, batch: int) -> torch.nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if observer in NNCF:
        return nncf_calibrated(job, images, batch, NNCF[observer], clamps)
    prepared = prepare_pt2e(captured(job, batch), quantizer(observer, clamps))
    with torch.no_grad():
        for start in range(0, len(images), batch):
            prepared(job.model_input(images[start : start + batch]))
    return convert_pt2e(prepared, fold_quantize=True)


def nncf_calibrated(
    job, images: torch.Tensor, batch: int, fast_bias_correction: bool | None, clamps: str
) -> torch.nn.Module:
    import nncf
    from nncf.experimental.torch.fx import quantize_pt2e

    from edgeseg.exporters.executorch_export import xnnpack_quantizer

    batches = [job.model_input(images[start : start + batch]) for start in range(0, len(images), batch)]
    return quantize_pt2e(
        captured(job, batch),
        ClampsAfterConvs(xnnpack_quantizer()) if clamps == "after" else xnnpack_quantizer(),
        nncf.Dataset(batches),
        subset_size=len(images),
        fast_bias_correction=fast_bias_correction,
    )


def captured(job, batch: int) -> torch.nn.Module:
    """The fp32 deploy module as ``torch.export`` captures it, with a dynamic batch when fed in batches."""
    if batch == 1:
        return copy.deepcopy(job.captured_fp32)
    example = job.model_input(job.verify_images[:2])
    dims = ({0: torch.export.Dim("batch", min=1, max=batch)},)
    return torch.export.export(job.fp32, (example,), dynamic_shapes=dims).module()


def draw(job, count: int, seed: int) -> torch.Tensor:
    """``count`` training images, seeded: seed 0 is the export's own draw."""
    from edgeseg.data import load_split
    from edgeseg.data.transforms import resize_images

    samples = load_split(job.recipe.data, "train", job.recipe.seed)
    generator = torch.Generator().manual_seed(job.recipe.seed + seed)
    pick = torch.randperm(len(samples), generator=generator)[: min(count, len(samples))]
    return resize_images([samples.images[i] for i in pick.tolist()], job.input_size)


def configurations(args) -> list[dict]:
    runs = []
    for count in args.counts:
        for seed in range(args.draws):
            for observer in args.observers:
                for batch in args.batches:
                    for clamps in args.clamps:
                        runs.append(
                            {"clamps": clamps, "observer": observer, "images": count, "draw": seed, "batch": batch}
                        )
    return runs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--name", default="pt2e_calibration")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--observers", nargs="+", default=["histogram", "minmax", "moving_average"])
    parser.add_argument("--counts", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--clamps", nargs="+", choices=["after", "before"], default=["after", "before"])
    parser.add_argument("--images", type=int, default=32, help="selection-split images scored")
    args = parser.parse_args(argv)

    from edgeseg.exporters import pt2e
    from edgeseg.exporters.export import prepare_job
    from edgeseg.recipe import ExportTarget, load_recipe

    torch.set_num_threads(2)
    recipe = load_recipe(args.recipe, args.overrides + [f"export.pt2e.sensitivity_images={args.images}"])
    job = prepare_job(args.checkpoint, recipe, ExportTarget(format="executorch", precision="int8"))
    images, masks = pt2e._sensitivity_set(job)
    fp32 = pt2e._miou(job, job.fp32, images, masks)
    print(f"fp32 {fp32:.2f} mIoU on {len(images)} {recipe.data.dataset} images", flush=True)
    rows = []
    for run in configurations(args):
        started = time.monotonic()
        model = calibrated(job, run["observer"], run["clamps"], draw(job, run["images"], run["draw"]), run["batch"])
        seconds = time.monotonic() - started
        run |= {"miou": round(pt2e._miou(job, model, images, masks), 3), "calibration_s": round(seconds, 1)}
        run["miou_drop"] = round(fp32 - run["miou"], 3)
        rows.append(run)
        print(json.dumps(run), flush=True)
    out = {
        "benchmark": args.name,
        "checkpoint": str(args.checkpoint),
        "recipe": str(args.recipe),
        "fp32_miou": round(fp32, 3),
        "scored_images": len(images),
        "rows": rows,
        "summary": summary(rows),
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"], indent=1))
    return out


def summary(rows: list[dict]) -> list[dict]:
    """Per (clamps, observer, images, batch): the drop's median, worst and spread over the draws."""
    keys = sorted({(r["clamps"], r["observer"], r["images"], r["batch"]) for r in rows})
    table = []
    for clamps, observer, count, batch in keys:
        key = (clamps, observer, count, batch)
        drops = [r["miou_drop"] for r in rows if (r["clamps"], r["observer"], r["images"], r["batch"]) == key]
        table.append(
            {
                "clamps": clamps,
                "observer": observer,
                "images": count,
                "batch": batch,
                "draws": len(drops),
                "median_drop": round(statistics.median(drops), 3),
                "worst_drop": max(drops),
                "best_drop": min(drops),
            }
        )
    return table


if __name__ == "__main__":
    main()
