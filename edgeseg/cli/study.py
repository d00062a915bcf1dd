"""``edgeseg study transfer RECIPE``: fine-tuning arms against training from scratch, at several
data fractions and seeds, each a cached build; the table and plots in runs/<name>/study/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.app import App
from edgeseg.cli.options import (
    Overrides,
    RayAddress,
    RecipePath,
    RunsDir,
    cluster_address,
    configure_logging,
    variant_line,
)

app = App(help="Studies of the seeds' claims on your own data.", no_args_is_help=True)


def _numbers(text: str, kind: type, option: str, example: str) -> list:
    from edgeseg.errors import RecipeError

    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RecipeError(f"{option}: {text!r} is not a comma-separated list of numbers (e.g. {example})") from None


@app.command("transfer")
def transfer(
    path: RecipePath,
    arms: Annotated[
        str,
        typer.Option(help="Comma-separated arms: scratch, frozen, partial, full, gradual, llrd."),
    ] = "scratch,frozen,partial,full,gradual",
    fractions: Annotated[str, typer.Option(help="Fractions of the training data (whole sequences' runs).")] = "1.0",
    seeds: Annotated[
        str,
        typer.Option(help="Seeds per arm and fraction (recipe seed, +1, ...): one count, or one per fraction (1,2,1)."),
    ] = "1",
    overrides: Overrides = None,
    runs: RunsDir = Path("runs"),
    ray: RayAddress = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final lines.")] = False,
) -> None:
    """Train every arm at every fraction and seed (each a cached, resumable build) and write the
    table, plots and page to runs/<name>/study/. Rerun the same command to resume.
    Exit code 12 when the --ray cluster does not answer."""
    from edgeseg.experiments.study import run_study
    from edgeseg.experiments.sweep import Progress
    from edgeseg.recipe import load_recipe

    configure_logging(quiet)
    recipe = load_recipe(path, overrides or [])

    def progress(name: str, error: str | None, where: str | None = None) -> None:
        variant_line(f"arm {name}", error, where, done="trained")

    chosen = [a.strip() for a in arms.split(",") if a.strip()]
    summary = run_study(
        recipe,
        runs,
        arms=chosen,
        fractions=_numbers(fractions, float, "--fractions", "0.1,0.25,1.0"),
        seeds=_numbers(seeds, int, "--seeds", "2 or 1,2,1"),
        source=str(path),
        ray=cluster_address(recipe, ray),
        progress=Progress(variant=progress, stage=lambda line: typer.echo(line, err=True)),
    )
    failed = [r for r in summary["runs"] if r["error"]]
    out = runs / recipe.name / "study"
    typer.echo(f"done: {len(summary['runs'])} runs ({len(failed)} failed) -> {out / 'study.html'}")
    if failed:
        from edgeseg.errors import EdgesegError

        raise EdgesegError(f"{len(failed)} study run(s) failed; first: {failed[0]['arm']}: {failed[0]['error']}")
