"""Reading a recipe file: size and alias limits, duplicate keys, ``${VAR}`` expansion, overrides."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from edgeseg.errors import RecipeError
from edgeseg.recipe.overrides import _apply_override
from edgeseg.recipe.root import Recipe
from edgeseg.recipe.validate import _dotted, recipe_from_dict

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# A full recipe has a few hundred values. YAML aliases repeat what they point to: ten aliases
# nested nine deep would expand to 10^9 values, so the expanded size is counted and bounded.
MAX_VALUES = 10_000

MAX_BYTES = 1 << 20


class _RecipeLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the later block would win silently)."""


def _mapping_without_duplicates(loader: _RecipeLoader, node: yaml.MappingNode) -> dict:
    first_line: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise _DuplicateKey(key, first_line[key], line)
        first_line[key] = line
    return loader.construct_mapping(node, deep=True)


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


_RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


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
    raw = _read_yaml(path)
    _check_size(raw, path)
    raw = _expand_env(raw, path, ())
    for override in overrides:
        _apply_override(raw, override, path)
    return recipe_from_dict(raw, source=str(path))


def _check_size(raw: Any, path: Path) -> None:
    """Refuse a recipe whose aliases expand it beyond ``MAX_VALUES`` (counted without expanding)."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        if id(value) not in sizes:  # an alias is the same object: counted once, multiplied by its uses
            children = value.values() if isinstance(value, dict) else value
            sizes[id(value)] = 1 + sum(size(child) for child in children)
        return sizes[id(value)]

    total = size(raw)
    if total > MAX_VALUES:
        raise RecipeError(
            f"{path}: the recipe expands to {total:,} values, more than the {MAX_VALUES:,} edgeseg accepts "
            "(YAML aliases repeat what they point to); write the values out or use fewer aliases"
        )


def _read_yaml(path: Path) -> Any:
    try:
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise RecipeError(f"{path}: {path.stat().st_size:,} bytes; a recipe is at most {MAX_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from None
    try:
        return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader: plain data only
    except _DuplicateKey as dup:
        raise RecipeError(
            f"{path}: line {dup.second}: key {dup.key!r} is given twice in one section (first at line {dup.first}); "
            "keep one (the later one would silently replace the earlier)"
        ) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecipeError(f"{path}: not valid YAML{where}: {problem}") from None


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
