"""``edgeseg train RECIPE``: fine-tune into a directory of checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg._io import refuse_stage_dir
from edgeseg.cli.options import Overrides, RecipePath, configure_logging


def train(
    path: RecipePath,
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint directory [default: runs/<name>/train-manual].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt.")] = False,
) -> None:
    """Fine-tune the recipe's model; writes best.pt, last.pt and history.json every epoch."""
    import contextlib
    import os

    from edgeseg.build.lock import locked
    from edgeseg.recipe import load_recipe
    from edgeseg.train.loop import fit

    configure_logging()
    recipe = load_recipe(path, overrides or [])
    out = out or Path("runs") / recipe.name / "train-manual"
    refuse_stage_dir(out)
    # Under torchrun every rank runs this command: rank 0 alone writes, so it alone holds the lock.
    first_rank = int(os.environ.get("RANK", "0")) == 0
    with locked(out, f"edgeseg train {path}") if first_rank else contextlib.nullcontext():
        result = fit(recipe, out, resume=resume)
    typer.echo(f"best val mIoU {result.best_miou:.2f} -> {result.best}")
