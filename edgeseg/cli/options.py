"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RecipePath = Annotated[Path, typer.Argument(help="Recipe YAML file.", show_default=False)]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe field: dotted.key=value (repeatable).", show_default=False),
]
CheckpointPath = Annotated[Path, typer.Argument(help="An edgeseg checkpoint (.pt).", show_default=False)]
RunsDir = Annotated[Path, typer.Option("--runs", help="Where runs/<recipe name>/ go.")]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Build each variant as a Ray task on this cluster: host:port, auto (the cluster this machine "
        "joined with `ray start`) or local (a new one here) [default: sweep.executor]. Needs edgeseg[cluster], "
        "and runs/ on a file system every node sees.",
        show_default=False,
    ),
]


def cluster_address(recipe, ray: str | None) -> str | None:
    """``--ray`` when given, else the recipe's ``sweep.executor`` when it names Ray; None: here."""
    executor = recipe.sweep.executor if recipe.sweep else None
    return ray or (executor.address if executor and executor.kind == "ray" else None)


def variant_line(name: str, error: str | None, where: str | None = None, done: str = "built") -> None:
    """A sweep's or study's line per finished variant (``where``: the Ray node it ran on)."""
    place = f" ({where})" if where else ""
    typer.echo(f"{name}: {'failed: ' + error if error else done}{place}", err=True)


def configure_logging(quiet: bool = False) -> None:
    import logging

    import rich
    from rich.console import Console
    from rich.logging import RichHandler

    # Logs go to stderr: stdout is for results (tables, --json) that scripts read. Rich's global
    # console (where other libraries' progress bars go, NNCF's among them) goes there too.
    rich.reconfigure(stderr=True, quiet=quiet)
    handler = RichHandler(show_path=False, console=Console(stderr=True))
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", handlers=[handler], force=True
    )


def writable_file(path: Path | None, option: str) -> None:
    """Refuse an output file that cannot be written before any work is done (a bench that
    measures for minutes must not fail at its last line). One line, exit 2."""
    import os

    from edgeseg.errors import RecipeError

    if path is None:
        return
    if path.is_dir():
        raise RecipeError(f"{option} {path}: a directory; give a file name")
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir():
        raise RecipeError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder if not path.exists() else path, os.W_OK):
        raise RecipeError(f"{option} {path}: not writable here (permission denied)")
