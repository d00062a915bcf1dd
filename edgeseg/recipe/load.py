"""Reading a recipe file: bounded YAML (``parse``), ``${VAR}`` expansion, overrides, validation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from edgeseg.errors import RecipeError
from edgeseg.limits import limit
from edgeseg.recipe.overrides import _apply_override
from edgeseg.recipe.parse import check_bounds, parse_yaml, read_bounded
from edgeseg.recipe.root import Recipe
from edgeseg.recipe.validate import _dotted, recipe_from_dict

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# The limits live in edgeseg.limits (one table); these names stay for code that imported them.
MAX_VALUES = limit("recipe_values")
MAX_BYTES = limit("recipe_bytes")


def load_recipe(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, expand, override and validate a recipe file.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings; values are parsed as YAML (``3``, ``[1, 2]``).

    Returns:
        The validated, frozen :class:`Recipe`.

    Raises:
        RecipeError: naming the file and dotted field of every problem.
    """
    path = Path(path)
    raw = _expand_env(parse_yaml(read_bounded(path), str(path)), path, ())
    for override in overrides:
        _apply_override(raw, override, path)
    if overrides:  # each value was bounded alone; together they may not pass the recipe's bounds
        check_bounds(raw, f"{path} with --set")
    return recipe_from_dict(raw, source=str(path))


def _expand_env(value: Any, path: Path, loc: tuple) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _expand_env(v, path, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise RecipeError(
            f"{path}: {_dotted(loc)}: environment variable {name} is not set (set it, or write ${{{name}:-default}})"
        )

    return _ENV_PATTERN.sub(substitute, value)
