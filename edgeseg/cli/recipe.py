"""``edgeseg recipe check|show``: validate a recipe, or print it fully resolved."""

from __future__ import annotations

import typer

from edgeseg.cli.app import App
from edgeseg.cli.options import Overrides, RecipePath

app = App(help="Validate or print recipes.", no_args_is_help=True)


@app.command("check")
def check(path: RecipePath, overrides: Overrides = None) -> None:
    """Validate a recipe; exit 2 with file:field messages if it is invalid."""
    from edgeseg.recipe import load_recipe

    recipe = load_recipe(path, overrides or [])
    typer.echo(f"{path}: ok (recipe '{recipe.name}', sha256 {recipe.digest()[:12]})")


@app.command("show")
def show(path: RecipePath, overrides: Overrides = None) -> None:
    """Print the fully resolved recipe (defaults filled, variables expanded, overrides applied)."""
    from edgeseg.recipe import load_recipe, recipe_to_yaml

    typer.echo(recipe_to_yaml(load_recipe(path, overrides or [])), nl=False)
