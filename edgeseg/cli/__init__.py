"""The ``edgeseg`` command: assembles the subcommands; each lives in its own module.

Nothing heavy is imported here: ``edgeseg --help`` must answer at once. Exit codes are mapped
by the app itself (``edgeseg.cli.app.App``).
"""

from __future__ import annotations

from edgeseg.cli import bench, build, clean, compress, evaluate, export, predict, recipe, runs, train
from edgeseg.cli.app import App

app = App(
    name="edgeseg",
    help="Fine-tune, compress, export and benchmark segmentation models for edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("build")(build.build)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("compress")(compress.compress)
app.command("export")(export.export)
app.command("bench")(bench.bench)
app.command("runs")(runs.runs)
app.command("clean")(clean.clean)
app.add_typer(recipe.app, name="recipe")


def main() -> None:
    """Console entry point."""
    app()
