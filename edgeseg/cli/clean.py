"""``edgeseg clean [DIR] [--dry-run]``: delete what no build needs any more."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def clean(
    directory: Annotated[Path, typer.Argument(help="Where runs/<recipe name>/ live.")] = Path("runs"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")] = False,
) -> None:
    """Remove archived recipes, scratch of interrupted builds (their next build starts those stages
    over) and stage directories no current recipe refers to. Runs being built are skipped."""
    from edgeseg.build.runs import clean as run_clean

    removed, skipped = run_clean(directory, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in removed:
        typer.echo(f"{verb} {item.path} ({item.bytes / 1e6:.1f} MB): {item.why}")
    for reason in skipped:
        typer.echo(f"skipped {reason}", err=True)
    total = sum(item.bytes for item in removed) / 1e6
    typer.echo(
        f"{verb} {len(removed)} item(s), {total:.1f} MB" + (f"; {len(skipped)} run(s) skipped" if skipped else "")
    )
