"""``edgeseg study transfer``: how much pretraining is worth, measured on your data.

Each arm is a way of starting or fine-tuning the recipe's model (``ARMS``); each is trained at
every data fraction and seed as an ordinary build (data -> train -> eval) in
``runs/<name>/variants/<arm>-f<fraction>-s<seed>/``, on the sweep's shared cache, so a rerun
or an interrupted study continues with every finished stage a cache hit (and a killed
fine-tune from its last epoch). Every arm gets the recipe's training budget unchanged: the
same epochs and the same time cap. The study trims what it does not measure: no compression,
export or selection, and a short benchmark of the fp32 model only.

The score is the fp32 mIoU on the recipe's headline evaluation split (``eval.splits[0]``): a
group-disjoint fold when ``data.validation`` carves one, which the study page says, so the
study measures generalisation to unseen scenes rather than memory of the training video.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import RecipeError
from edgeseg.experiments.sweep import QUIET, Progress, Variant, build_all, session, variant_dir, with_settings
from edgeseg.recipe import Recipe
from edgeseg.registry import lookup, table

SCHEMA = "edgeseg.study/1"


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    settings: Callable[[Recipe], dict[str, Any]]  # recipe overrides: dotted key -> value


ARMS: dict[str, Arm] = table(
    (
        Arm(
            "scratch",
            "from scratch (random init, the backbone at the head's LR)",
            lambda r: {"model.backbone_weights": "none", "train.backbone_lr_mult": 1.0},
        ),
        Arm(
            "frozen",
            "fixed feature extractor (backbone frozen throughout)",
            lambda r: {"train.freeze_backbone_epochs": r.train.epochs},
        ),
        Arm(
            "partial",
            "partial fine-tuning (the first half of the backbone frozen)",
            lambda r: {"train.frozen_stages": r.train.backbone_stages // 2},
        ),
        Arm("full", "full fine-tuning (the recipe's discriminative LRs)", lambda r: {}),
        Arm(
            "gradual",
            "gradual unfreezing (one backbone stage more from the top each epoch)",
            lambda r: {"train.unfreeze_every_epochs": r.train.unfreeze_every_epochs or 1},
        ),
        Arm(
            "llrd",
            "layer-wise LR decay (0.7 per stage from the top)",
            lambda r: {"train.layer_lr_decay": r.train.layer_lr_decay or 0.7},
        ),
    ),
    "study arm",
)

# What a study does not measure: it trains and scores the fp32 model, nothing downstream.
TRIMMED = {
    "compress.steps": [],
    "export.targets": [],
    "bench.iterations": 10,
    "bench.rounds": 2,
    "bench.remote": [],
    "gates": {},
}


def seeds_per_fraction(seeds: int | list[int], fractions: list[float]) -> list[int]:
    """How many seeds each fraction trains: one count for all, or one per fraction (the spread
    is often wanted where the data is scarce, and costs least there)."""
    counts = [seeds] if isinstance(seeds, int) else list(seeds)
    if len(counts) == 1:
        counts = counts * len(fractions)
    if len(counts) != len(fractions):
        raise RecipeError(f"--seeds: give one count, or one per fraction ({len(fractions)}), not {len(counts)}")
    if min(counts, default=1) < 1:
        raise RecipeError("--seeds: at least 1")
    return counts


def study_variants(
    recipe: Recipe, arms: list[str], fractions: list[float], seeds: int | list[int], source: str
) -> list[Variant]:
    """One validated recipe per (arm, fraction, seed), arms in the order given."""
    counts = seeds_per_fraction(seeds, fractions)
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise RecipeError(f"--fractions: {fraction} is not a fraction of the training data in (0, 1]")
    base = recipe.model_copy(update={"sweep": None, "select": None})
    out = []
    for arm_name in arms:
        arm = lookup(ARMS, arm_name, "study arm")
        for fraction, count in zip(fractions, counts, strict=True):
            for seed in range(recipe.seed, recipe.seed + count):
                settings = {**arm.settings(recipe), "data.train_fraction": fraction, "seed": seed}
                name = f"{arm.name}-f{fraction:g}-s{seed}"
                variant = with_settings(
                    base, {**TRIMMED, **settings}, source, f"study arm {arm.name} (fraction {fraction:g})"
                )
                full = variant.model_copy(update={"name": f"{recipe.name}.{name}"[:120]})
                out.append(Variant(name, {"arm": arm.name, "fraction": fraction, "seed": seed}, full))
    return out


def run_study(
    recipe: Recipe,
    runs_root: Path,
    *,
    arms: list[str],
    fractions: list[float],
    seeds: int | list[int],
    source: str,
    ray: str | None = None,
    progress: Progress = QUIET,
) -> dict:
    """Train every arm x fraction x seed (cached, resumable), then write ``runs/<name>/study/``.
    With ``ray`` (a cluster address, ``auto`` or ``local``) each run is a Ray task, as a sweep's
    variants are; the study's table and page are written here, by the driver."""
    variants = study_variants(recipe, arms, fractions, seeds, source)
    root = runs_root / recipe.name
    with session(root, ray, f"edgeseg study transfer {recipe.name}"):
        failures = build_all(variants, root, 1, progress, ray)
        summary = summarise_study(recipe, variants, root, failures)
        write_study(summary, root / "study")
    return summary


def _variant_row(root: Path, variant: Variant, error: str | None) -> dict:
    """One trained arm: its headline mIoU, epochs, wall time and validation curve."""
    run = variant_dir(root, variant)
    row = {**variant.settings, "run": str(run), "error": error, "miou": None, "epochs": None, "train_s": None}
    try:
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        history = json.loads((run / "train" / "history.json").read_text())
    except (OSError, ValueError):
        return row
    row["miou"] = metrics["miou"]
    row["split"] = metrics["split"]
    row["epochs"] = len(history)
    row["train_s"] = round(history[-1]["elapsed_s"], 1) if history else None
    row["images_per_s"] = round(statistics.median(e["images_per_s"] for e in history), 2) if history else None
    row["curve"] = [{"elapsed_s": round(e["elapsed_s"], 1), "miou": e["val_miou"]} for e in history]
    return row


def _spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "seeds": len(values),
    }


def summarise_study(recipe: Recipe, variants: list[Variant], root: Path, failures: dict[str, str]) -> dict:
    """Every run's figures, and per arm and fraction the mean and spread across seeds."""
    rows = [_variant_row(root, v, failures.get(v.name)) for v in variants]
    cells: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        if row["miou"] is not None:
            cells.setdefault((row["arm"], row["fraction"]), []).append(row["miou"])
    table_rows = [{"arm": a, "fraction": f, **_spread(v)} for (a, f), v in cells.items()]
    return {
        "schema": SCHEMA,
        "recipe": recipe.name,
        "split": recipe.eval.split,
        "split_note": _split_note(root, variants, recipe.eval.split),
        "arms": {name: ARMS[name].label for name in dict.fromkeys(v.settings["arm"] for v in variants)},
        "fractions": sorted({v.settings["fraction"] for v in variants}),
        "runs": rows,
        "table": table_rows,
    }


def _split_note(root: Path, variants: list[Variant], split: str) -> str:
    """What the headline split measures: new scenes, or scenes the model trained on (data.json)."""
    for variant in variants:
        try:
            data = json.loads((variant_dir(root, variant) / "data" / "data.json").read_text())
        except (OSError, ValueError):
            continue
        verdict = (data.get("overlap") or {}).get(split, {}).get("verdict")
        if verdict:
            return f"scored on '{split}': {verdict}"
    return f"scored on '{split}'"


def write_study(summary: dict, out: Path) -> None:
    """study.json, study.md, study.html and the two plots, published together."""
    from edgeseg._io import staged_dir
    from edgeseg.report.study import study_html, study_markdown, study_plots

    with staged_dir(out, "study.json") as scratch:
        plots = study_plots(summary)
        for name, png in plots.items():
            (scratch / f"{name}.png").write_bytes(png)
        (scratch / "study.json").write_text(json.dumps(summary, indent=2))
        (scratch / "study.md").write_text(study_markdown(summary))
        (scratch / "study.html").write_text(study_html(summary, plots))
