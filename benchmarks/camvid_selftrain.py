"""Self-training on unlabelled target-domain images, measured on a real and a synthetic shift.

    EDGESEG_DATA=../shared/data python benchmarks/camvid_selftrain.py

Real shift: daylight to dusk. The model fine-tunes on CamVid's daylight training sequences
(0006R0 and 0016E5, 305 labelled frames) and selects on CamVid val (daylight, 0016E5). The dusk
sequence 0001TP (62 labelled training frames, ordered by frame number) is cut in two: its first
``--unlabeled-frames`` frames are the unlabelled set (images only, as a user's own camera gives
them), the rest are the labelled dusk frames the model is scored on, held out from that set.

The adapt settings are chosen without those scored frames: each of CANDIDATES self-trains on the
pool less its last ``--dev-frames`` frames, which, with their labels, are the dev set; the best
on dev among those losing at most 1 mIoU on daylight val is then built on the whole pool and
scored once on the held-out dusk frames. ``--adapt NAME`` takes a candidate without choosing,
e.g. to repeat with another ``--set seed=N`` the settings chosen for seed 0.

Synthetic shift: a corruption of ``edgeseg/corruptions.py`` (``--corruption``, ``--severity``)
applied to a copy of the daylight training images, which becomes the unlabelled set; scored
on the val split under the same corruption (seeded, identical pixels for every model);
``--corruption none`` skips it.

Both final adaptations (the chosen settings) are variants of one build
(``recipes/camvid_lite0_selftrain_dusk.yaml``) on the sweep's shared cache, so they start from
the same fine-tuned model and only the ``adapt`` stage differs. The data roots are written under
``--workdir`` (hard links into the CamVid root; the corrupted images are new files), outside the
project. A control repeats the students' schedule (rounds, epochs, LR, EMA, strong augmentation)
on the labelled images alone, so the gain the pseudo-labels bring is told apart from that of
more training under strong augmentation. Each model, before adaptation, the control and after
each adaptation, is scored through PyTorch on dusk, daylight val and corrupted val, per class.
Writes benchmarks/results/<tag>.json with the environment and the training facts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
RECIPE = Path(__file__).parent.parent / "recipes" / "camvid_lite0_selftrain_dusk.yaml"
DAYLIGHT = ("0006R0", "0016E5")
DUSK = "0001TP"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:  # another filesystem: a copy
        shutil.copy2(src, dst)


def _lines(root: Path, split: str) -> list[tuple[str, str]]:
    """(image, mask) paths relative to the root, from ``<split>.txt``."""
    out = []
    for line in (root / f"{split}.txt").read_text().split("\n"):
        if line.strip():
            image, mask = (p.replace("/SegNet/CamVid/", "", 1) for p in line.split())
            out.append((image, mask))
    return out


def _write_split(source: Path, root: Path, split: str, pairs: list[tuple[str, str]]) -> None:
    for image, mask in pairs:
        _link(source / image, root / image)
        _link(source / mask, root / mask)
    (root / f"{split}.txt").write_text("".join(f"{i} {m}\n" for i, m in pairs))


def _sequence(pairs: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return sorted(p for p in pairs if Path(p[0]).name.split("_")[0] in names)


def prepare_daylight(source: Path, work: Path, unlabeled_frames: int, dev_frames: int) -> tuple[Path, dict, dict]:
    """The daylight data root (train: daylight; val: CamVid val; test: held-out dusk), the
    unlabelled dusk folders (``all``: the whole pool; ``select``: the pool less its last
    ``dev_frames``) and the dev root, whose val split is those frames with their labels."""
    train = _lines(source, "train")
    dusk = _sequence(train, DUSK)
    pool, scored = dusk[:unlabeled_frames], dusk[unlabeled_frames:]
    root, dev = work / "camvid_daylight", work / "camvid_dusk_dev"
    _write_split(source, root, "train", _sequence(train, *DAYLIGHT))
    _write_split(source, root, "val", _lines(source, "val"))
    _write_split(source, root, "test", scored)
    _write_split(source, dev, "val", pool[-dev_frames:])
    folders = {"all": work / "unlabeled_dusk", "select": work / f"unlabeled_dusk_less_{dev_frames}"}
    for name, images in (("all", pool), ("select", pool[:-dev_frames])):
        for image, _ in images:
            _link(source / image, folders[name] / Path(image).name)
    facts = {
        "train_frames": len(_sequence(train, *DAYLIGHT)),
        "unlabeled_dusk": [Path(i).name for i, _ in pool],
        "dev_dusk": [Path(i).name for i, _ in pool[-dev_frames:]],
        "scored_dusk": [Path(i).name for i, _ in scored],
    }
    return root, {"root": root, "dev": dev, **folders}, facts


def _corrupt_file(src: Path, dst: Path, name: str, severity: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    from edgeseg.corruptions import corrupt

    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    image = np.asarray(Image.open(src).convert("RGB"))
    Image.fromarray(corrupt(image, name, severity, seed)).save(dst.with_suffix(".tmp.png"))
    dst.with_suffix(".tmp.png").replace(dst)


def prepare_corrupted(daylight: Path, work: Path, name: str, severity: int) -> tuple[Path, Path]:
    """An unlabelled folder of corrupted daylight training images, and a root whose val split is
    CamVid val under the same corruption (its masks unchanged)."""
    from edgeseg.corruptions import image_seed

    tag = f"{name}-{severity}"
    unlabeled, root = work / f"unlabeled_{tag}", work / f"camvid_val_{tag}"
    for index, (image, _) in enumerate(_lines(daylight, "train")):
        _corrupt_file(
            daylight / image, unlabeled / Path(image).name, name, severity, image_seed(1, name, severity, index)
        )
    val = _lines(daylight, "val")
    for index, (image, mask) in enumerate(val):
        _corrupt_file(daylight / image, root / image, name, severity, image_seed(0, name, severity, index))
        _link(daylight / mask, root / mask)
    (root / "val.txt").write_text("".join(f"{i} {m}\n" for i, m in val))
    return unlabeled, root


def build_variants(daylight: Path, variants: dict[str, tuple[Path, dict]], runs: Path, overrides: list[str]) -> dict:
    """One build per (unlabelled folder, adapt settings), sharing data and fine-tuning; the run
    directory of each."""
    from edgeseg.experiments.sweep import Variant, build_all, variant_dir
    from edgeseg.recipe import load_recipe

    base = load_recipe(RECIPE, [f"data.root={daylight}", *overrides])
    built = []
    for name, (folder, adapt) in variants.items():
        data = base.data.model_copy(update={"unlabeled": str(folder)})
        update = {"data": data, "adapt": base.adapt.model_copy(update=adapt), "name": f"{base.name}.{name}"}
        built.append(Variant(name, {"unlabeled": str(folder), **adapt}, base.model_copy(update=update)))
    root = runs / base.name
    failures = build_all(built, root, 1, lambda name, error: print(f"built {name}: {error or 'ok'}", flush=True))
    if failures:
        raise SystemExit(f"builds failed: {failures}")
    return {v.name: variant_dir(root, v) for v in built}


def control_without_pseudo_labels(run: Path) -> Path:
    """The control: the self-training students' exact schedule (adapt's rounds, epochs, LR, EMA
    and strong augmentation), from the same fine-tuned model, on the labelled images alone. What
    self-training gains beyond it is the pseudo-labels' doing."""
    from edgeseg.models.checkpoint import load_model
    from edgeseg.recipe import load_recipe
    from edgeseg.train.loop import fit
    from edgeseg.train.selftrain import student_recipe

    recipe = load_recipe(run / "recipe.yaml")
    schedule = f"control-{recipe.adapt.rounds}x{recipe.adapt.epochs}"  # one control per schedule
    out, teacher = run.parent.parent / schedule, run / "train" / "best.pt"
    for number in range(1, recipe.adapt.rounds + 1):
        folder = out / f"round-{number}"
        if not (folder / "done").is_file():
            fit(student_recipe(recipe), folder, resume=True, model=load_model(teacher).model.train(), keep="last")
            (folder / "done").write_text("")
        teacher = folder / "best.pt"
    return teacher


def score(checkpoint: Path, scoring: dict[str, tuple[dict, str]]) -> dict:
    """mIoU and per-class IoU of one checkpoint through PyTorch on every scoring split."""
    from edgeseg.bench import BenchSpec, bench

    specs = [
        BenchSpec(
            artifact=str(checkpoint),
            name=label,
            runtime="torch",
            data=data,
            split=split,
            threads=2,
            iterations=2,
            rounds=1,
            warmup=1,
        )  # fmt: skip
        for label, (data, split) in scoring.items()
    ]
    out = {}
    for result in bench(specs):
        accuracy = result["accuracy"]
        out[result["name"]] = {"miou": accuracy["miou"], "per_class_iou": accuracy["per_class_iou"]}
    return out


def training_facts(run: Path) -> dict:
    history = json.loads((run / "train" / "history.json").read_text())
    rates = sorted(e["images_per_s"] for e in history[1:]) or [history[0]["images_per_s"]]
    adapt = json.loads((run / "adapt" / "adapt.json").read_text())
    return {
        "epochs": len(history),
        "images_per_s_median": rates[len(rates) // 2],
        "train_wall_min": round(history[-1]["elapsed_s"] / 60, 1),
        "adapt_rounds": adapt["rounds"],
        "class_shifts": adapt["class_shifts"],
        "shipped": adapt["shipped"],
    }


# The adapt settings the selection compares (absolute, so a change to the recipe cannot move
# them): the recipe's two rounds, a third round, and each with half of every student epoch
# pseudo-labelled (``unlabeled_share``). Rounds 2 and 3 come from one three-round build: a round
# does not depend on how many follow it.
CANDIDATES = {
    "2 rounds": {"rounds": 2, "unlabeled_share": None},
    "3 rounds": {"rounds": 3, "unlabeled_share": None},
    "2 rounds, share 0.5": {"rounds": 2, "unlabeled_share": 0.5},
    "3 rounds, share 0.5": {"rounds": 3, "unlabeled_share": 0.5},
}
MAX_SOURCE_LOSS = 1.0  # the bound on the daylight val loss


def choose(before: dict, scores: dict) -> str:
    """The candidate with the best dev-dusk mIoU among those losing at most MAX_SOURCE_LOSS on
    daylight val; the best of all when none does."""
    source = before["daylight_val"]["miou"]
    allowed = [n for n, s in scores.items() if source - s["daylight_val"]["miou"] <= MAX_SOURCE_LOSS]
    return max(allowed or scores, key=lambda n: scores[n]["dev_dusk"]["miou"])


def select_adapt(daylight: Path, folders: dict, runs: Path, overrides: list[str]) -> dict:
    """Each candidate self-trained on the pool less its dev frames, scored on those dev frames
    (labelled) and on daylight val; the 22 scored dusk frames play no part."""
    builds = {}
    for share in sorted({c["unlabeled_share"] for c in CANDIDATES.values()}, key=str):
        rounds = max(c["rounds"] for c in CANDIDATES.values() if c["unlabeled_share"] == share)
        # every round is a candidate, so every round trains: the drift rule would stop a build early
        builds[share] = {"rounds": rounds, "unlabeled_share": share, "stop_on_drift": False}
    names = {share: f"select-{s['rounds']}r-share{share}" for share, s in builds.items()}
    dirs = build_variants(daylight, {names[k]: (folders["select"], s) for k, s in builds.items()}, runs, overrides)
    scoring = {
        "dev_dusk": ({"dataset": "camvid", "root": str(folders["dev"])}, "val"),
        "daylight_val": ({"dataset": "camvid", "root": str(daylight)}, "val"),
    }
    first = next(iter(dirs.values()))
    before = score(first / "train" / "best.pt", scoring)
    scores = {}
    for name, settings in CANDIDATES.items():
        run = dirs[names[settings["unlabeled_share"]]]
        scores[name] = score(run / "adapt" / f"round-{settings['rounds']}" / "best.pt", scoring)
    chosen = choose(before, scores)
    print("selection:", {n: round(s["dev_dusk"]["miou"], 2) for n, s in scores.items()}, "->", chosen, flush=True)
    return {"candidates": CANDIDATES, "before": before, "scores": scores, "chosen": chosen}


def main(argv: list[str] | None = None) -> dict:
    from edgeseg.bench.environment import environment

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("EDGESEG_DATA", "../shared/data")) / "camvid")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "edgeseg" / "camvid_selftrain")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--unlabeled-frames", type=int, default=40)
    parser.add_argument("--dev-frames", type=int, default=10, help="labelled pool frames the selection scores on")
    parser.add_argument("--corruption", default="gaussian_noise", help="the synthetic shift; 'none' skips it")
    parser.add_argument("--severity", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe overrides")
    parser.add_argument(
        "--adapt",
        choices=sorted(CANDIDATES),
        help="take these adapt settings instead of choosing on dev frames (e.g. those chosen for another seed)",
    )
    parser.add_argument("--tag", default="selftrain_camvid")
    args = parser.parse_args(argv)

    daylight, folders, facts = prepare_daylight(args.root, args.workdir, args.unlabeled_frames, args.dev_frames)
    if args.adapt:  # chosen elsewhere: no candidate builds, no dev scores
        selection = {"candidates": CANDIDATES, "chosen": args.adapt, "given": True}
    else:
        selection = select_adapt(daylight, folders, args.runs, args.overrides)
    adapt = CANDIDATES[selection["chosen"]]
    variants = {"dusk": (folders["all"], adapt)}
    scoring = {
        "dusk": ({"dataset": "camvid", "root": str(daylight)}, "test"),
        "daylight_val": ({"dataset": "camvid", "root": str(daylight)}, "val"),
    }
    if args.corruption != "none":
        corrupted, corrupted_root = prepare_corrupted(daylight, args.workdir, args.corruption, args.severity)
        synthetic = f"{args.corruption}-{args.severity}"
        variants[synthetic] = (corrupted, adapt)
        scoring[f"val_{synthetic}"] = ({"dataset": "camvid", "root": str(corrupted_root)}, "val")
    runs = build_variants(daylight, variants, args.runs, args.overrides)
    first = next(iter(runs.values()))
    models = {"fine-tuned (before)": score(first / "train" / "best.pt", scoring)}
    control = control_without_pseudo_labels(first)
    models["strong-augmentation rounds, no unlabelled images (control)"] = score(control, scoring)
    for name, run in runs.items():
        models[f"self-trained on {name}"] = score(run / "adapt" / "best.pt", scoring)
    report = {
        "benchmark": "camvid_selftrain",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "recipe": str(RECIPE.relative_to(RECIPE.parent.parent)),
        "overrides": args.overrides,
        "data": facts,
        "selection": selection,
        "adapt": adapt,
        "synthetic_shift": {"corruption": args.corruption, "severity": args.severity},
        "training": {name: training_facts(run) for name, run in runs.items()},
        "models": models,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    for model, scores in models.items():
        print(f"{model:32s}", "  ".join(f"{split} {s['miou']:.2f}" for split, s in scores.items()))
    return report


if __name__ == "__main__":
    main()
