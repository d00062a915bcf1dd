"""``edgeseg compress RECIPE``: the recipe's compression steps on a fine-tuned checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg._io import refuse_stage_dir
from edgeseg.cli.options import Overrides, RecipePath, configure_logging


def compress(
    path: RecipePath,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Fine-tuned checkpoint [default: runs/<name>/train/best.pt].")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory [default: runs/<name>/compress-manual].")] = None,
    overrides: Overrides = None,
) -> None:
    """Prune, sparsify, quantize (PTQ or QAT) in recipe order; report MACs, params, size and mIoU deltas."""
    from edgeseg.compress.steps import compress_checkpoint
    from edgeseg.errors import CheckpointError, RecipeError
    from edgeseg.recipe import load_recipe

    configure_logging()
    recipe = load_recipe(path, overrides or [])
    if not recipe.compress.steps:
        raise RecipeError(f"{path}: compress.steps is empty: nothing to do (e.g. steps: [{{kind: qat, epochs: 3}}])")
    checkpoint = checkpoint or Path("runs") / recipe.name / "train" / "best.pt"
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{checkpoint}: no fine-tuned checkpoint; run `edgeseg build {path}` first or pass --checkpoint"
        )
    out = out or Path("runs") / recipe.name / "compress-manual"
    refuse_stage_dir(out)
    report = compress_checkpoint(recipe, checkpoint, out)
    _print_table(report)
    typer.echo(f"-> {out / 'model.pt'} ({report['checkpoint_mb']} MB); report {out / 'report.json'}")


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("step", "GMACs", "params (M)", "weights (MB)", "val mIoU", "vs fp32", "notes")
    fp32 = report["fp32"]
    table.add_row(
        "fp32",
        f"{fp32['gmacs']:.3f}",
        f"{fp32['params_m']:.3f}",
        f"{fp32['deployed_weights_mb']:.2f}",
        f"{fp32['val_miou']:.2f}",
        "",
        "",
    )
    for step in report["steps"]:
        table.add_row(
            step["kind"],
            f"{step['gmacs']:.3f}",
            f"{step['params_m']:.3f}",
            f"{step['deployed_weights_mb']:.2f}",
            f"{step['miou']:.2f}",
            f"{step['miou_delta']:+.2f}",
            _notes(step),
        )
    Console().print(table)


def _notes(step: dict) -> str:
    if step["kind"] == "prune":
        return f"{100 * step['macs_kept']:.0f}% of MACs kept (ratio {step['ratio']}, {step['importance']})"
    if step["kind"] == "sparsity":
        gzip = step["gzip_mb"]
        zeros = f"{100 * step['weight_sparsity']:.0f}% zeros"
        return f"{zeros}, gzip {gzip['dense']} -> {gzip['sparse']} MB; {step['speedup']}"
    kept = step.get("fallback", {}).get("kept_in_float", [])
    return f"kept in float: {', '.join(k['group'] for k in kept)}" if kept else ""
