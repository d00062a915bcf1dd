"""A sweep on the shared cache, and the artifact ``select:`` picks from it.

    EDGESEG_DATA=../shared/data python benchmarks/sweep_budget.py recipes/camvid_lite0_budget.yaml \
        --name sweep_camvid_lite0

Runs ``edgeseg sweep`` on the recipe (its ``sweep.grid``), timed, then reads what the sweep
recorded: per variant, every stage it holds, whether it ran or came from another variant, and
the seconds it took where it ran. "Without the shared cache" is the sum, over variants, of the
seconds of every stage each holds: what six separate builds would have spent, from the same
stage records (computed, not re-run: six fine-tunes would take hours here). The sweep's own
wall time is the span of its stage records (first start to last finish), so a rerun that finds
everything cached reports the original sweep. Then ``select:``
is applied to the sweep's artifacts with each ``--latency-limit`` (the summary is rewritten;
nothing is rebuilt) and the choice, its held-out mIoU and its margins are recorded.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

from edgeseg.bench.environment import environment
from edgeseg.errors import GateError

RESULTS = Path(__file__).parent / "results"
FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # stage.json's started_at / finished_at


def stage_seconds(root: Path, variants: list) -> dict:
    """Per variant: its stages, which ran here, and the seconds of all of them."""
    out = {}
    for variant in variants:
        manifest = json.loads((root / "variants" / variant.name / "manifest.json").read_text())
        stages = manifest["stages"]
        out[variant.name] = {
            "settings": variant.settings,
            "stages": {s["name"]: {"seconds": s["seconds"], "reused": s["cached"]} for s in stages},
            "seconds_if_built_alone": round(sum(s["seconds"] or 0 for s in stages), 1),
        }
    return out


def span_seconds(root: Path, variants: list) -> float:
    """From the first stage's start to the last one's finish, from the stage records (a rerun
    that finds everything cached does not change it: linked stages keep their own times)."""
    stamps = []
    for variant in variants:
        for stage in json.loads((root / "variants" / variant.name / "manifest.json").read_text())["stages"]:
            stamps += [
                datetime.strptime(stage["started_at"], FORMAT),
                datetime.strptime(stage["finished_at"], FORMAT),
            ]
    return (max(stamps) - min(stamps)).total_seconds()


def training_facts(root: Path, variants: list) -> dict:
    epochs = json.loads((root / "variants" / variants[0].name / "train" / "history.json").read_text())
    rates = [e.get("images_per_s") for e in epochs if e.get("images_per_s")]
    return {"epochs": len(epochs), "images_per_s": round(sum(rates) / len(rates), 2) if rates else None}


def select_with(recipe, variants, root: Path, limit: float) -> dict:
    from edgeseg.experiments.sweep import collect
    from edgeseg.select.decide import decide

    spec = recipe.select.model_copy(update={"max_latency_ms": limit})
    decision = decide(collect(root, variants, spec.device), spec)
    chosen = decision["chosen"]
    keep = ("name", "settings", "format", "precision", "miou", "latency_ms", "latency_cv", "peak_mb", "size_mb")
    return {
        "max_latency_ms": limit,
        "chosen": {k: chosen[k] for k in keep} | {"margins": chosen["margins"]} if chosen else None,
        "runner_up": decision["runner_up"] and decision["runner_up"]["name"],
        "within_noise_of_runner_up": decision["within_noise_of_runner_up"],
        "missed": decision["missed"],
        "closest": decision["closest"] and decision["closest"]["name"],
    }


def main() -> None:
    from edgeseg.experiments.sweep import run_sweep, variants
    from edgeseg.recipe import load_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--latency-limit", type=float, action="append", default=[])
    parser.add_argument(
        "--selections-only", action="store_true", help="Only redo the selections in an existing result (no sweep)."
    )
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    grid = recipe.sweep.grid
    out = RESULTS / f"{args.name}.json"
    if args.selections_only:
        result = json.loads(out.read_text())
        all_variants = variants(recipe, grid, str(args.recipe))
        root = args.runs / recipe.name
        result["selections"] = [select_with(recipe, all_variants, root, limit) for limit in args.latency_limit]
        out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result["selections"], indent=1))
        return
    started = time.monotonic()
    try:
        run_sweep(recipe, grid, args.runs, source=str(args.recipe))
    except GateError as exc:  # select: found nothing within its limits; the sweep itself is whole
        print(f"select: {exc}")
    wall = time.monotonic() - started
    root = args.runs / recipe.name
    summary = json.loads((root / "sweep" / "sweep.json").read_text())
    all_variants = variants(recipe, grid, str(args.recipe))
    per_variant = stage_seconds(root, all_variants)
    alone = sum(v["seconds_if_built_alone"] for v in per_variant.values())
    result = {
        "benchmark": "sweep_budget",
        "recipe": str(args.recipe),
        "grid": grid,
        "this_invocation_wall_s": round(wall, 1),
        "sweep_span_s": span_seconds(root, all_variants),
        "without_shared_cache_s": round(alone, 1),
        "stages": summary["stages"],
        "training": training_facts(root, all_variants),
        "variants": per_variant,
        "artifacts": summary["artifacts"],
        "pareto_front": summary["pareto_front"],
        "decision_of_the_recipe": summary["decision"],
        "selections": [select_with(recipe, all_variants, root, limit) for limit in args.latency_limit],
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("sweep_span_s", "without_shared_cache_s", "stages", "training")}))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
