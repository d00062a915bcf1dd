"""``--set dotted.key=value`` overrides, applied to a parsed recipe before validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeseg.errors import RecipeError
from edgeseg.recipe.parse import check_bounds, parse_yaml
from edgeseg.recipe.root import Recipe
from edgeseg.recipe.validate import recipe_from_dict


def apply_overrides(recipe: Recipe, overrides: list[str] | tuple[str, ...], source: str) -> Recipe:
    """A copy of ``recipe`` with ``--set`` overrides applied and validated again."""
    if not overrides:
        return recipe
    raw = recipe.model_dump(mode="json")
    for override in overrides:
        _apply_override(raw, override, Path(source))
    check_bounds(raw, f"{source} with --set")
    return recipe_from_dict(raw, source=source)


def _apply_override(raw: Any, override: str, path: Path) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {override!r}: expected dotted.key=value (e.g. train.epochs=3)")
    parts = key.strip().split(".")
    value = _value(text, f"--set {key.strip()}")
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: --set {key}: the recipe is not a mapping of fields")
    node = raw
    for i, part in enumerate(parts):
        name, index = _indexed(part, key)
        where = ".".join(parts[: i + 1])
        if not isinstance(node, dict):
            raise RecipeError(f"{path}: --set {key}: {'.'.join(parts[:i])} is a value, not a section")
        last = i == len(parts) - 1
        if index is None:
            if last:
                node[name] = value
            else:
                if node.get(name) is None:
                    node[name] = {}
                node = node[name]
            continue
        items = node.get(name)
        if not isinstance(items, list) or not -len(items) <= index < len(items):
            count = len(items) if isinstance(items, list) else 0
            raise RecipeError(f"{path}: --set {key}: {where}: the recipe's {name} has {count} item(s)")
        if last:
            items[index] = value
        else:
            node = items[index]


def _value(text: str, where: str) -> Any:
    """A ``--set`` value as YAML (``3``, ``[1, 2]``, ``{a: 1}``), bounded like a recipe file; text
    that is not YAML at all (``/data/a:b``) stays the string it is."""
    if not text.strip():
        return ""
    try:
        return parse_yaml(text, where)
    except RecipeError as exc:
        if "not valid YAML" not in str(exc):
            raise  # a key given twice, an alias bomb, nesting: refused, never read as a string
        return text


def _indexed(part: str, key: str) -> tuple[str, int | None]:
    """``steps[0]`` -> ("steps", 0); ``epochs`` -> ("epochs", None)."""
    match = re.fullmatch(r"([^\[\]]+)(?:\[(-?\d+)\])?", part.strip())
    if match is None:
        raise RecipeError(f"--set {key}: {part!r} is not a field name or name[index]")
    return match.group(1), None if match.group(2) is None else int(match.group(2))
