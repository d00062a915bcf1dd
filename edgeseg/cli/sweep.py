"""``edgeseg sweep RECIPE --grid key=v1,v2``: variants of a recipe on one shared build cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.options import (
    Overrides,
    RayAddress,
    RecipePath,
    RunsDir,
    cluster_address,
    configure_logging,
    variant_line,
)


def sweep(
    path: RecipePath,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="dotted.key=value1,value2 (repeatable; list items as name[i]: "
            "compress.steps[0].target_macs=0.35,0.5). Replaces the recipe's sweep.grid entry of the same key.",
            show_default=False,
        ),
    ] = None,
    overrides: Overrides = None,
    runs: RunsDir = Path("runs"),
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Variants built at once [default: sweep.jobs, 1]. Each build uses every core: on a 2-core "
            "host keep 1 (parallel builds only slow each other and disturb the latency figures).",
            min=1,
        ),
    ] = None,
    ray: RayAddress = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Search instead of building every combination: this many trials of an Optuna study over "
            "the grid (whose entries may then be ranges, key=low..high) [default: sweep.search.trials]. "
            "Needs edgeseg[cluster].",
            min=1,
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final lines.")] = False,
) -> None:
    """Build every combination of the grid; one summary and Pareto front in runs/<name>/sweep/.

    Stages the variants have in common (data check, fine-tune, compression) run once. With a
    select: section, the best artifact within its limits is copied to runs/<name>/deploy/.
    With --trials or sweep.search, an Optuna study picks the variants (stored: rerun to resume).
    Exit code 3 when select: finds nothing within its limits; 12 when the --ray cluster does not answer.
    """
    from edgeseg.errors import RecipeError
    from edgeseg.experiments.sweep import Progress, parse_grid, run_sweep
    from edgeseg.limits import limit
    from edgeseg.recipe import load_recipe

    configure_logging(quiet)
    recipe = load_recipe(path, overrides or [])
    if recipe.sweep is None and not grid:
        raise RecipeError(f"{path}: sweep.grid: nothing to sweep; give --grid key=v1,v2 or a sweep: section")
    recipe = with_command_line(recipe, parse_grid(grid or []), trials, path)
    combined = recipe.sweep.grid

    def progress(name: str, error: str | None, where: str | None = None) -> None:
        variant_line(f"variant {name}", error, where)

    default_jobs = recipe.sweep.jobs if recipe.sweep else 1
    if jobs is not None and jobs > limit("sweep_jobs"):
        raise RecipeError(f"--jobs {jobs}: at most {limit('sweep_jobs')} builds at once (limit sweep_jobs)")
    address = cluster_address(recipe, ray)
    told = Progress(variant=progress, stage=lambda line: typer.echo(line, err=True), trial=trial_line)
    how = {"source": str(path), "jobs": jobs or default_jobs, "ray": address, "progress": told}
    if recipe.sweep.search is not None:
        from edgeseg.experiments.search import run_search

        summary = run_search(recipe, combined, runs, **how)
    else:
        summary = run_sweep(recipe, combined, runs, **how)
    out = runs / recipe.name / "sweep"
    stages = summary["stages"]
    searched = f"{len(summary['search']['trials'])} trials, " if summary.get("search") else ""
    typer.echo(
        f"done: {searched}{len(summary['variants'])} variants, {len(summary['artifacts'])} artifacts, "
        f"{stages['distinct']} distinct stages for {stages['in_variants']} -> {out / 'sweep.html'}"
    )
    if summary["decision"]:
        from edgeseg.select.decide import summary_line

        typer.echo(summary_line(summary["decision"]) + f" -> {runs / recipe.name / 'deploy'}")


def with_command_line(recipe, grid: dict, trials: int | None, path: Path):
    """The recipe's ``sweep:`` with ``--grid`` (replacing keys it names) and ``--trials N`` (the
    search's budget; NSGA-II on mIoU and latency when the recipe has no search), validated as
    one recipe: a range without a search, or a search the bench cannot score, is named here."""
    from edgeseg.recipe import recipe_from_dict

    if not grid and trials is None:
        return recipe
    raw = recipe.model_dump(mode="json")
    sweep = raw.get("sweep") or {}
    cli_grid = {k: v if isinstance(v, list) else v.model_dump(exclude_none=True) for k, v in grid.items()}
    sweep["grid"] = {**sweep.get("grid", {}), **cli_grid}
    if trials is not None:
        sweep["search"] = {**(sweep.get("search") or {}), "trials": trials}
    return recipe_from_dict({**raw, "sweep": sweep}, f"{path} with --grid/--trials")


def trial_line(record: dict) -> None:
    if record["error"]:
        typer.echo(f"trial {record['number']} ({record['variant']}): failed: {record['error']}", err=True)
        return
    figures = ", ".join(f"{name} {value:.4g}" for name, value in record["values"].items())
    typer.echo(f"trial {record['number']} ({record['variant']}): {figures}", err=True)
