"""``edgeseg data import|check``: a labelling tool's export to the ``folder`` layout; a recipe's
data looked at before training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.app import App
from edgeseg.cli.options import Overrides, RecipePath, RunsDir
from edgeseg.data.imports import FORMAT_NAMES  # the table only: its readers load when used

app = App(help="Bring your own labels: import annotation exports, check a recipe's data.", no_args_is_help=True)


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
    crowd: Annotated[
        str, typer.Option(help="COCO iscrowd regions: ignore (255), or label (their class: CVAT's brush masks).")
    ] = "ignore",
) -> None:
    """Write SRC as <out>/<split>/images and masks (uint8 class ids, 255 = ignore) and dataset.yaml;
    a recipe then reads it with data: {dataset: folder, root: OUT}. Bad input: exit 4, nothing written."""
    from edgeseg.data.imports import import_dataset

    dataset = import_dataset(src, fmt, out, background=background, keep_empty_classes=keep_empty_classes, crowd=crowd)
    for split, facts in dataset["splits"].items():
        line = f"{split}: {facts['images']} images"
        if facts["unannotated"]:
            line += f", {len(facts['unannotated'])} without annotations skipped (listed in dataset.yaml)"
        if facts["crowd_regions"] and crowd == "ignore":
            line += (
                f", {facts['crowd_regions']} crowd regions ignored (CVAT's brush masks come as crowd: --crowd label)"
            )
        if facts["exif_rotated"]:
            line += f", {len(facts['exif_rotated'])} rotated as their EXIF says"
        typer.echo(line)
    typer.echo(f"{len(dataset['class_names'])} classes: {', '.join(dataset['class_names'])}")
    typer.echo(f"{out}: written; in a recipe: data: {{dataset: folder, root: {out}}}")


@app.command("check")
def check(
    path: RecipePath,
    overrides: Overrides = None,
    runs: RunsDir = Path("runs"),
    sheet: Annotated[
        Path | None, typer.Option(help="Where the contact sheet goes [default: <runs>/<name>/contact_sheet.png].")
    ] = None,
) -> None:
    """The build's data stage alone: every split the recipe reads, decoded and described (images,
    sizes, classes with pixel share and image count, ignored share, overlap with training), and a
    contact sheet of a few images per split with their masks painted over them."""
    from edgeseg.data import dataset_info
    from edgeseg.data.check import recipe_data_report
    from edgeseg.data.sheet import contact_sheet
    from edgeseg.recipe import load_recipe

    recipe = load_recipe(path, overrides or [])
    decoded: dict = {}
    report = recipe_data_report(recipe, decoded)
    for split, facts in report["splits"].items():
        typer.echo(_split_summary(split, facts, report["overlap"].get(split)))
    info = dataset_info(recipe.data)
    written = contact_sheet(decoded, info.class_names, info.palette, sheet or runs / recipe.name / "contact_sheet.png")
    typer.echo(f"contact sheet: {written}")


def _split_summary(split: str, facts: dict, overlap: dict | None) -> str:
    sizes = ", ".join(f"{size} ({n})" for size, n in facts["sizes_wxh"].items())
    lines = [f"{split}: {facts['samples']} images, {sizes}; ignored {facts['ignored_pixel_fraction']:.1%} of pixels"]
    for name, share in facts["class_pixel_fraction"].items():
        lines.append(f"  {name:<20} {share:7.2%} of pixels, in {facts['class_image_count'][name]} images")
    if facts["absent_classes"]:
        lines.append(f"  absent: {', '.join(facts['absent_classes'])}")
    if overlap:
        lines.append(f"  {overlap['verdict']}")
    return "\n".join(lines)
