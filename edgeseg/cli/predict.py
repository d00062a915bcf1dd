"""``edgeseg predict CHECKPOINT IMAGES... --out DIR``: colour overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.options import CheckpointPath


def predict(
    checkpoint: CheckpointPath,
    images: Annotated[list[Path], typer.Argument(help="Image files.", exists=True, dir_okay=False, show_default=False)],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("predictions"),
    alpha: Annotated[float, typer.Option(min=0, max=1, help="Overlay opacity.")] = 0.5,
) -> None:
    """Write <name>_overlay.png (classes painted over the image) and <name>_classes.png."""
    from edgeseg.predict.images import predict_files

    for path in predict_files(checkpoint, images, out, alpha):
        typer.echo(path)
