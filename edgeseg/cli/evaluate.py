"""``edgeseg eval CHECKPOINT``: mIoU, per-class IoU, pixel accuracy and mean Dice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.options import CheckpointPath, Overrides, writable_file


def evaluate(
    checkpoint: CheckpointPath,
    split: Annotated[
        str, typer.Option(help="Split to score: train, val, test, or fold (the validation fold the recipe carves).")
    ] = "val",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
    overrides: Overrides = None,
) -> None:
    """Score a checkpoint on a split of the dataset its recipe names (e.g. --set data.root=DIR)."""
    from rich.console import Console
    from rich.table import Table

    from edgeseg.eval import evaluate_checkpoint

    writable_file(json_path, "--json")
    metrics = evaluate_checkpoint(checkpoint, split, overrides or [])
    table = Table(title=f"{checkpoint} on {split} ({metrics['images']} images)")
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    table.add_column("Dice %", justify="right")
    for name, iou in metrics["per_class_iou"].items():
        dice = metrics["per_class_dice"][name]
        table.add_row(name, _fmt(iou), _fmt(dice))
    table.add_section()
    table.add_row("[bold]mean", f"[bold]{_fmt(metrics['miou'])}", f"[bold]{_fmt(metrics['mean_dice'])}")
    console = Console()
    console.print(table)
    console.print(f"pixel accuracy {_fmt(metrics['pixel_accuracy'])} %")
    for group, scores in metrics.get("per_group", {}).items():
        console.print(f"  group {group}: mIoU {_fmt(scores['miou'])} % ({scores['images']} images)")
    if json_path:
        from edgeseg._io import write_text_atomic

        write_text_atomic(json_path, json.dumps(metrics, indent=2))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
