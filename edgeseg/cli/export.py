"""``edgeseg export CHECKPOINT``: verified deployable artifacts from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.build.names import export_dir
from edgeseg.cli.options import CheckpointPath, Overrides, configure_logging
from edgeseg.formats import FORMAT_NAMES, PRECISIONS, cli_help


def export(
    checkpoint: CheckpointPath,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{cli_help(FORMAT_NAMES)} [default: every target in the recipe's export section].",
        ),
    ] = None,
    precision: Annotated[str, typer.Option("--precision", "-p", help=f"{cli_help(PRECISIONS)}.")] = "fp32",
    out: Annotated[
        Path | None, typer.Option(help="Bundle directory [default: runs/<name>/export-<format>-<precision>].")
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Export, verify against PyTorch on validation images, and write a bundle with model.json.

    Export settings come from the recipe embedded in the checkpoint; change them with --set,
    e.g. --set export.dynamic_hw=true --set export.output=class_map.
    """
    from edgeseg.exporters.export import export_checkpoint
    from edgeseg.models.checkpoint import read_checkpoint
    from edgeseg.recipe import apply_overrides, parse_target, recipe_from_dict

    configure_logging()
    source = f"{checkpoint} (embedded recipe)"
    recipe = apply_overrides(recipe_from_dict(read_checkpoint(checkpoint)["recipe"], source), overrides or [], source)
    targets = [parse_target(format_, precision)] if format_ is not None else list(recipe.export.targets)
    for target in targets:
        if out is not None and len(targets) == 1:
            bundle = out
        else:
            bundle = (out or Path("runs") / recipe.name) / export_dir(target.name)
        meta = export_checkpoint(checkpoint, recipe, target, bundle)
        v = meta["verification"]
        versus_fp32 = "" if v["agreement_vs_fp32"] is None else f", {v['agreement_vs_fp32']:.4%} vs fp32"
        typer.echo(f"{target.name:<14} {bundle}  agreement {v['agreement']:.4%} vs {v['reference']}{versus_fp32}")
