"""``edgeseg predict MODEL INPUT... --out DIR``: colour overlays of images, videos or a camera."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    model: Annotated[
        Path,
        typer.Argument(
            help="A bundle directory (runs/<name>/deploy or an export-* folder; runs without torch) or an edgeseg "
            "checkpoint (.pt).",
            exists=True,
            show_default=False,
        ),
    ],
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Image files, video files (.mp4, .mkv, .mov, ...) or a camera index (0).", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("predictions"),
    alpha: Annotated[float, typer.Option(min=0, max=1, help="Overlay opacity.")] = 0.5,
    runtime: Annotated[
        str | None, typer.Option(help="A bundle's runtime [default: as deployed, else the format's].")
    ] = None,
    compute: Annotated[
        str | None, typer.Option(help="OpenVINO's precision: f32, bf16, f16 [default: as deployed].")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Inference threads [default: the runtime's].")] = None,
) -> None:
    """Images: <name>_overlay.png (classes painted over the image) and <name>_classes.png (palette
    PNG of class ids). Videos and cameras: <name>_overlay.mp4 (H.264) and <name>_classes.mkv
    (FFV1, lossless: each pixel its class id). Ends with the milliseconds of each stage."""
    from edgeseg.errors import RecipeError
    from edgeseg.predict import kit
    from edgeseg.predict.images import predict_files
    from edgeseg.predict.segmenters import open_segmenter
    from edgeseg.predict.video import is_video, predict_video

    missing = [s for s in inputs if not s.isdigit() and not Path(s).is_file()]
    if missing:
        raise RecipeError(f"{missing[0]}: no such file (give images, videos or a camera index)")
    segmenter = open_segmenter(model, runtime, threads, compute, video=any(map(is_video, inputs)))
    for source in filter(is_video, inputs):
        summary = predict_video(segmenter, source, out, alpha)
        typer.echo(summary["overlay"])
        typer.echo(f"{source}: {summary['frames']} frames, {kit.speed_line(summary)}", err=True)
    images = [Path(s) for s in inputs if not is_video(s)]
    if images:
        written, summary = predict_files(segmenter, images, out, alpha)
        for path in written:
            typer.echo(path)
        typer.echo(f"{len(images)} images: {kit.speed_line(summary)}", err=True)
