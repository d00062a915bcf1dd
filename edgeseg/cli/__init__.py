"""The ``edgeseg`` command: assembles the subcommands; each lives in its own module.

Nothing heavy is imported here: ``edgeseg --help`` must answer at once.
"""

from __future__ import annotations

import sys

import typer

from edgeseg.cli import bench, build, compress, evaluate, export, predict, recipe, train
from edgeseg.errors import DependencyError, EdgesegError

TRAINING_STACK = {"torch", "torchvision", "nncf", "torch_pruning", "onnx", "onnxslim", "timm", "matplotlib"}

app = typer.Typer(
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
app.add_typer(recipe.app, name="recipe")


def main() -> None:
    """Console entry point: user errors print one clear message and exit with their code.

    Usage errors (exit 2) and --help are click's; everything edgeseg raises for a person to fix
    is an EdgesegError and never shows a traceback.
    """
    try:
        app()
    except EdgesegError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        if exc.name not in TRAINING_STACK:
            raise
        # A device installed with edgeseg[bench] has no torch: only `bench` and `recipe` work there.
        typer.secho(f"error: this command needs the training stack ({exc.name} is not installed): pip install \"edgeseg[train]\"", fg="red", err=True)
        sys.exit(DependencyError.exit_code)
