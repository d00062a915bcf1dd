"""An Optuna search against the grid it searches (issue 35): trials to reach the grid's best.

    EDGESEG_DATA=../shared/data python benchmarks/search_vs_grid.py recipes/camvid_lite0_budget.yaml \
        --name search_vs_grid_camvid_lite0 --seeds 5 --trials 8 --population 4

Needs the grid built first (benchmarks/sweep_budget.py on the same recipe and --runs): the
search draws from the grid's own values, so each trial's build finds every stage in the sweep's
cache and the trial is scored by the figures the grid measured, through edgeseg's own search
(``edgeseg.experiments.search.run_search``, as ``edgeseg sweep --trials`` runs it). For each
sampler and seed, a search of --trials trials in its own study (a throwaway SQLite file); the
figure is the trial at which the artifact standing for a trial (the one ``select:`` would deploy
from its variant) is within the recipe's ``select:`` limits and within --tolerance mIoU of the
grid's choice under the same limits. The grid needs every combination (6 here) to know it has
its best; a search's trials may repeat a combination (a cache hit, but a trial spent).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from edgeseg.bench.environment import environment
from edgeseg.errors import GateError

RESULTS = Path(__file__).parent / "results"
SAMPLERS = ("nsga2", "tpe", "random")


def grid_choice(recipe, runs: Path, source: str) -> dict:
    """What ``select:`` picks from the whole grid (its built variants, not rebuilt)."""
    from edgeseg.experiments.sweep import collect, variants
    from edgeseg.select.decide import decide

    all_variants = variants(recipe, recipe.sweep.grid, source)
    decision = decide(collect(runs / recipe.name, all_variants, recipe.select.device), recipe.select)
    if decision["chosen"] is None:
        raise SystemExit("the grid has no artifact within select:'s limits: nothing to reach")
    chosen = decision["chosen"]
    return {"name": chosen["name"], "miou": chosen["miou"], "latency_ms": chosen["latency_ms"], "of": len(all_variants)}


def one_search(recipe, runs: Path, source: str, sampler: str, seed: int, args, storage: Path) -> dict:
    from edgeseg.experiments.search import run_search

    search = {"trials": args.trials, "sampler": sampler, "seed": seed, "population": args.population}
    search["storage"] = f"sqlite:///{storage}"
    sweep = recipe.sweep.model_copy(update={"search": recipe.sweep.search.model_validate(search)})
    searching = recipe.model_copy(update={"sweep": sweep})
    started = time.monotonic()
    try:
        summary = run_search(searching, recipe.sweep.grid, runs, source=source)
    except GateError:  # no trial within the limits: the summary is written all the same
        summary = json.loads((runs / recipe.name / "sweep" / "sweep.json").read_text())
    wall = time.monotonic() - started
    trials = [t for t in summary["search"]["trials"] if t["state"] == "complete"]
    return {"sampler": sampler, "seed": seed, "trials": trials, "wall_s": round(wall, 1)}


def trials_to_reach(run: dict, target: float, tolerance: float) -> int | None:
    for index, trial in enumerate(run["trials"], 1):
        if trial["feasible"] and trial["values"]["miou"] >= target - tolerance:
            return index
    return None


def main() -> None:
    from edgeseg.recipe import load_recipe
    from edgeseg.recipe.select import SweepSearch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--population", type=int, default=4, help="NSGA-II's generation, TPE's random start")
    parser.add_argument("--tolerance", type=float, default=0.5, help="mIoU points below the grid's choice")
    parser.add_argument("--sampler", action="append", choices=SAMPLERS, default=[])
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    if recipe.sweep.search is None:  # a template for the searches' settings
        recipe = recipe.model_copy(
            update={"sweep": recipe.sweep.model_copy(update={"search": SweepSearch(trials=args.trials)})}
        )
    source = str(args.recipe)
    best = grid_choice(recipe, args.runs, source)
    runs = []
    with tempfile.TemporaryDirectory() as studies:
        for sampler in args.sampler or SAMPLERS:
            for seed in range(args.seeds):
                run = one_search(recipe, args.runs, source, sampler, seed, args, Path(studies) / f"{sampler}-{seed}.db")
                run["trials_to_reach"] = trials_to_reach(run, best["miou"], args.tolerance)
                run["distinct_variants"] = len({t["variant"] for t in run["trials"]})
                runs.append(run)
                print(sampler, seed, run["trials_to_reach"], f"{run['wall_s']} s", flush=True)
    result = {
        "benchmark": "search_vs_grid",
        "recipe": source,
        "grid": recipe.sweep.grid,
        "select": recipe.select.model_dump(),
        "grid_choice": best,
        "tolerance_miou": args.tolerance,
        "trials": args.trials,
        "population": args.population,
        "by_sampler": {
            s: summarise([r for r in runs if r["sampler"] == s], best["of"]) for s in args.sampler or SAMPLERS
        },
        "searches": runs,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["by_sampler"], indent=1))
    print(f"-> {out}")


def summarise(runs: list[dict], grid_size: int) -> dict:
    reached = [r["trials_to_reach"] for r in runs if r["trials_to_reach"] is not None]
    return {
        "searches": len(runs),
        "reached": len(reached),
        "trials_to_reach": sorted(reached),
        "median_trials_to_reach": statistics.median(reached) if reached else None,
        "grid_builds_needed": grid_size,
        "mean_distinct_variants": round(statistics.mean(r["distinct_variants"] for r in runs), 2),
        "mean_wall_s_per_trial": round(statistics.mean(r["wall_s"] / max(len(r["trials"]), 1) for r in runs), 2),
    }


if __name__ == "__main__":
    main()
