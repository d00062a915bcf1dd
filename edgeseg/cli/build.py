"""``edgeseg build RECIPE``: every stage of the recipe, cached and published atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.build.names import export_target
from edgeseg.build.stages import STAGE_NAMES, STAGES
from edgeseg.cli.options import Overrides, RecipePath, RunsDir, configure_logging


def build(
    path: RecipePath,
    overrides: Overrides = None,
    runs: RunsDir = Path("runs"),
    force: Annotated[
        list[str] | None, typer.Option(help=f"Rerun a stage even if cached: {', '.join(STAGE_NAMES)}.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final line.")] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON summary (stages, cache hits, seconds) and nothing else on stdout."),
    ] = False,
) -> None:
    """Fine-tune, evaluate, compress, export and benchmark the recipe's model into runs/<recipe name>/.

    Ends with report.html.

    Exit code 3 when an artifact misses a limit of the recipe's gates: section.
    """
    from edgeseg.build.pipeline import build as run_build
    from edgeseg.errors import RecipeError
    from edgeseg.recipe import load_recipe
    from edgeseg.registry import did_you_mean

    configure_logging(quiet or json_out)
    recipe = load_recipe(path, overrides or [])
    known = (
        *STAGE_NAMES,
        *(name for stage in STAGES for name, _ in stage.instances(recipe) if name not in STAGE_NAMES),
    )
    unknown = sorted(set(force or ()) - set(known))
    if unknown:
        raise RecipeError(
            f"--force {unknown[0]}: unknown stage{did_you_mean(unknown[0], known)}; stages are {', '.join(known)}"
        )

    def report(stage) -> None:
        if not (quiet or json_out):
            state = "cached" if stage.cached else f"ran in {stage.seconds:.1f} s"
            typer.echo(f"{stage.name:<22} {state:<16} {json.dumps(stage.info.as_json())}")

    results = run_build(recipe, runs, force=tuple(force or ()), on_stage=report)
    if json_out:
        stages = [{"name": s.name, "cached": s.cached, "seconds": s.seconds, "info": s.info.as_json()} for s in results]
        typer.echo(
            json.dumps(
                {"run": str(runs / recipe.name), "report": str(runs / recipe.name / "report.html"), "stages": stages}
            )
        )
        return
    miou = next(s.info.miou for s in results if s.name == "eval")
    exported = [export_target(s.name) for s in results if export_target(s.name)]
    typer.echo(
        f"done: {runs / recipe.name} ({recipe.eval.split} mIoU {miou}; artifacts: {', '.join(exported) or 'none'})"
    )
    decision = runs / recipe.name / "decision.json"
    if recipe.select and decision.is_file():  # what to ship and how to run it: deploy/model.json "deployment"
        from edgeseg.select.decide import summary_line

        typer.echo(f"{summary_line(json.loads(decision.read_text()))} -> {runs / recipe.name / 'deploy'}")
