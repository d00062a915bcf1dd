"""``edgeseg data import``: a labelling tool's export to edgeseg's ``folder`` layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.app import App
from edgeseg.data.imports import FORMAT_NAMES  # the table only: its readers load when used

app = App(help="Bring your own labels: import annotation exports.", no_args_is_help=True)


@app.command("import")
def import_(
    src: Annotated[Path, typer.Argument(help="The export: a folder (or a COCO / Label Studio JSON file).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMAT_NAMES)}.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="A new or empty folder (or an earlier import).")],
    background: Annotated[
        str | None, typer.Option(help="Polygon formats: name a class for pixels no shape covers (else ignored).")
    ] = None,
    keep_empty_classes: Annotated[
        bool, typer.Option("--keep-empty-classes", help="Keep label-map classes no annotation uses.")
    ] = False,
) -> None:
    """Write SRC as <out>/<split>/images and masks (uint8 class ids, 255 = ignore) and dataset.yaml;
    a recipe then reads it with data: {dataset: folder, root: OUT}. Bad input: exit 4, nothing written."""
    from edgeseg.data.imports import import_dataset

    dataset = import_dataset(src, fmt, out, background=background, keep_empty_classes=keep_empty_classes)
    for split, facts in dataset["splits"].items():
        line = f"{split}: {facts['images']} images"
        if facts["unannotated"]:
            line += f", {len(facts['unannotated'])} without annotations skipped (listed in dataset.yaml)"
        if facts["exif_rotated"]:
            line += f", {len(facts['exif_rotated'])} rotated as their EXIF says"
        typer.echo(line)
    typer.echo(f"{len(dataset['class_names'])} classes: {', '.join(dataset['class_names'])}")
    typer.echo(f"{out}: written; in a recipe: data: {{dataset: folder, root: {out}}}")
