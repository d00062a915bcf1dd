"""The ``edgeseg`` command: assembles the subcommands; each lives in its own module.

Nothing heavy is imported here: ``edgeseg --help`` must answer at once. Exit codes are mapped
by the app itself (``edgeseg.cli.app.App``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from edgeseg.cli import (
    bench,
    build,
    clean,
    compress,
    data,
    evaluate,
    export,
    predict,
    recipe,
    runs,
    study,
    sweep,
    train,
)
from edgeseg.cli.app import App

app = App(
    name="edgeseg",
    help="Fine-tune, compress, export and benchmark segmentation models for edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="With --version: Python, CPU flags and every dependency's version.")
    ] = False,
) -> None:
    """Fine-tune, compress, export and benchmark segmentation models for edge devices."""
    if version:
        from edgeseg import __version__
        from edgeseg.cli.version import version_report

        print(version_report() if verbose else __version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(2)


app.command("build")(build.build)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("compress")(compress.compress)
app.command("export")(export.export)
app.command("bench")(bench.bench)
app.command("sweep")(sweep.sweep)
app.command("runs")(runs.runs)
app.command("clean")(clean.clean)
app.add_typer(recipe.app, name="recipe")
app.add_typer(data.app, name="data")
app.add_typer(study.app, name="study")


def main() -> None:
    """Console entry point."""
    app()
