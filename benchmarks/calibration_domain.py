"""Does int8 lose on an unseen sequence because its calibration images never showed that scene?

    EDGESEG_DATA=../shared/data python benchmarks/calibration_domain.py \\
        runs/benchmarks/camvid_lite0_heldout_10min_fold2/best.pt recipes/camvid_lite0_heldout.yaml \\
        --fold 0001TP --calibrate-without 0006R0 --name calibration_domain_camvid_lite0_0001TP

A diagnostic, not a recipe (the export's parity limit is lifted so every artifact is scored):
one float checkpoint trained with ``--fold`` held out, PTQ-exported (target ``any``, as a build
does) twice per format: calibrated on the training split the model saw (no frame of the fold's
sequence), and calibrated on a split that holds out another sequence instead
(``--calibrate-without``), so the fold's own frames are among the calibration draws. Both are
scored natively on every frame of the fold. If the second closes the gap to fp32, the loss is the
calibration set's domain, not int8 itself. Writes results/<name>.json with the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from edgeseg.bench.environment import environment
from edgeseg.recipe import ExportTarget, load_recipe

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--fold", required=True, help="the sequence the checkpoint never trained on")
    parser.add_argument("--calibrate-without", required=True, help="the sequence held out of calibration instead")
    parser.add_argument("--formats", nargs="+", default=["onnx", "openvino"])
    parser.add_argument("--name", default="calibration_domain")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    # every artifact is scored, so the export's parity limit is lifted (its agreement is recorded)
    lifted = ["export.verify.on_target=false", "export.verify.min_agreement_int8=0"]
    scored = load_recipe(args.recipe, [f"data.validation.groups=[{args.fold}]", *lifted])
    other = load_recipe(args.recipe, [f"data.validation.groups=[{args.calibrate_without}]"])
    calibrations = {"without the fold's sequence": scored, "with it": scored.model_copy(update={"data": other.data})}
    from edgeseg.exporters import export_checkpoint

    work = REPO / "runs" / "benchmarks" / args.name
    rows = [score(args.checkpoint, scored, None, "pytorch-fp32")]
    for fmt in args.formats:
        for label, recipe in calibrations.items():
            out = work / f"{fmt}-{label.split()[0]}"
            started = time.monotonic()
            meta = export_checkpoint(args.checkpoint, recipe, ExportTarget(format=fmt, precision="int8"), out)
            row = score(out, scored, label, f"{fmt}-int8-any")
            row["export_s"] = round(time.monotonic() - started, 1)
            row["verify_agreement"] = meta["verification"]["agreement"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "benchmark": "calibration_domain",
        "command": "python benchmarks/calibration_domain.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "checkpoint": str(args.checkpoint),
        "fold": args.fold,
        "rows": rows,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    return result


def score(artifact: Path, recipe, calibration: str | None, name: str) -> dict:
    """mIoU on every frame of the fold, natively (one timed call: accuracy is what this is about)."""
    from edgeseg.bench.measure import BenchSpec, measure

    spec = BenchSpec(
        artifact=str(artifact),
        runtime="torch" if calibration is None else None,
        data=recipe.data.model_dump(mode="json"),
        split="fold",
        seed=recipe.seed,
        iterations=1,
        warmup=1,
        warmup_s=0.0,
        rounds=1,
        threads=2,
    )
    accuracy = measure(spec)["accuracy"]
    return {"artifact": name, "calibration": calibration, "miou": accuracy["miou"], "images": accuracy["images"]}


if __name__ == "__main__":
    main()
