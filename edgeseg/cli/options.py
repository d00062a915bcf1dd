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
