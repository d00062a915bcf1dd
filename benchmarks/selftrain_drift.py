"""Would ``adapt.stop_on_drift`` have shipped the right model in the self-training benchmarks?

    EDGESEG_DATA=../shared/data python benchmarks/selftrain_drift.py     # a minute; results/selftrain_drift.json

Replays the rule on every adaptation that ``camvid_selftrain.py`` measured (its committed
results: runs 1-4, the dusk shift and the Gaussian-noise shift), without training anything. For
each, the class shift of the fine-tuned model and of round 1's student is recomputed from the
``predicted_per_class`` each round saved and from the labelled class mix of the daylight
training frames (CamVid train less the dusk sequence 0001TP, on the benchmark's own data root,
counted as the data stage counts it). The stop rule decides from those two (the runs predate
the last student's labelling pass, so a drift of round 2's own student is not seen here): a
drifted first student ships the fine-tuned model, else the adaptation goes on. The target-domain
score of what ships is then read from the same results: the model before adaptation, or the
self-trained one.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"
RUNS = {
    "run 1 (seed 0)": "selftrain_camvid.json",
    "run 2 (seed 0, chosen on dev)": "selftrain_camvid_selected.json",
    "run 3 (seed 1)": "selftrain_camvid_seed1.json",
    # built after the rule's margin was set, with the rule on: its first out-of-sample point
    "run 4 (seed 1, EMA base)": "selftrain_camvid_seed1_ema.json",
}
# Each shift's target-domain split in the results' model scores.
TARGET_SPLIT = {"dusk": "dusk", "gaussian_noise-1": "val_gaussian_noise-1"}


def daylight_class_mix(camvid: Path) -> list[float]:
    """The class shares of the benchmark's daylight training frames (its own data root), counted
    as the data stage counts them."""
    import tempfile

    from camvid_selftrain import prepare_daylight

    from edgeseg.data.check import check_data
    from edgeseg.recipe import DataSpec

    with tempfile.TemporaryDirectory() as work:
        root, _, _ = prepare_daylight(camvid, Path(work), unlabeled_frames=40, dev_frames=10)
        split = check_data(DataSpec(dataset="camvid", root=str(root)), ["train"], seed=0)["splits"]["train"]
    print(f"daylight training frames: {split['samples']}")
    return list(split["class_pixel_fraction"].values())


def replay(result: dict, mix: list[float]) -> list[dict]:
    from edgeseg.train.selftrain import _shipped, class_shift

    rows = []
    for shift, facts in result["training"].items():
        shifts = [class_shift(r["predicted_per_class"], mix) for r in facts["adapt_rounds"]]
        shipped = _shipped(shifts[:2], stop_on_drift=True)
        split = TARGET_SPLIT[shift]
        before = result["models"]["fine-tuned (before)"][split]["miou"]
        after = result["models"][f"self-trained on {shift}"][split]["miou"]
        rows.append(
            {
                "shift": shift,
                "class_shifts": shifts,
                "stops": shipped == 0,
                "before": before,
                "self_trained": after,
                "shipped_miou": before if shipped == 0 else after,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = Path(os.environ.get("EDGESEG_DATA", "../shared/data"))
    parser.add_argument("--camvid", type=Path, default=data / "camvid")
    args = parser.parse_args(argv)
    mix = daylight_class_mix(args.camvid)
    runs = {name: replay(json.loads((RESULTS / file).read_text()), mix) for name, file in RUNS.items()}
    for name, rows in runs.items():
        for r in rows:
            verdict = "stop: ships the fine-tuned model" if r["stops"] else "goes on"
            print(
                f"{name:32s} {r['shift']:18s} shift {r['class_shifts']}  {verdict}: "
                f"{r['before']:.2f} -> {r['self_trained']:.2f}, ships {r['shipped_miou']:.2f}"
            )
    result = {
        "benchmark": "selftrain_drift",
        "command": "python benchmarks/selftrain_drift.py",
        "environment": environment(),
        "labelled_class_mix": mix,
        "sources": RUNS,
        "runs": runs,
    }
    (RESULTS / "selftrain_drift.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
