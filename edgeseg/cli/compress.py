"""``edgeseg compress RECIPE``: the recipe's compression steps on a fine-tuned checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.options import Overrides, RecipePath, configure_logging


def compress(
    path: RecipePath,
    checkpoint: Annotated[Path | None, typer.Option(help="Fine-tuned checkpoint [default: runs/<name>/train/best.pt].")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory [default: runs/<name>/compress-manual].")] = None,
    overrides: Overrides = None,
) -> None:
    """Quantize (PTQ or QAT, with float fallback) and report MACs, params, size and mIoU deltas."""
    from edgeseg.compress import compress_checkpoint
    from edgeseg.errors import CheckpointError, RecipeError
    from edgeseg.recipe import load_recipe

    configure_logging()
    recipe = load_recipe(path, overrides or [])
    if not recipe.compress.steps:
        raise RecipeError(f"{path}: compress.steps is empty: nothing to do (e.g. steps: [{{kind: qat, epochs: 3}}])")
    checkpoint = checkpoint or Path("runs") / recipe.name / "train" / "best.pt"
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no fine-tuned checkpoint; run `edgeseg build {path}` first or pass --checkpoint")
    out = out or Path("runs") / recipe.name / "compress-manual"
    report = compress_checkpoint(recipe, checkpoint, out)
    fp32 = report["fp32"]
    typer.echo(f"fp32        val mIoU {fp32['val_miou']:.2f}  {fp32['gmacs']:.3f} GMACs  {fp32['params_m']:.3f} M params")
    for step in report["steps"]:
        kept = step.get("fallback", {}).get("kept_in_float", [])
        typer.echo(f"{step['kind']:<11} val mIoU {step['miou']:.2f} ({step['miou_delta']:+.2f})" + (f"  kept in float: {', '.join(k['group'] for k in kept)}" if kept else ""))
    typer.echo(f"-> {out / 'model.pt'} ({report['checkpoint_mb']} MB); report {out / 'report.json'}")
