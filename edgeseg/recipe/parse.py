"""YAML as edgeseg reads it, from a recipe file, a ``--set`` value or a ``--grid`` value alike:
safe (plain data only), no key given twice, merge keys allowed, and bounded in bytes, values and
depth before anything expands it (``edgeseg.limits``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgeseg.errors import RecipeError
from edgeseg.limits import limit

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SELF_REFERENCE = "a YAML alias refers to the section that holds it (a value cannot contain itself)"


class _RecipeLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (the later one would win silently)."""


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


def _mapping_without_duplicates(loader: _RecipeLoader, node: yaml.MappingNode) -> dict:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *base`: merged keys may be overridden, as YAML says
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value, not a list or mapping", key_node.start_mark
            ) from None
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise _DuplicateKey(key, first_line[key], line)
        first_line[key] = line
    return loader.construct_mapping(node, deep=True)  # flattens merge keys first


_RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_bounded(path: Path) -> str:
    """The recipe file's text, reading at most ``recipe_bytes`` + 1 bytes (``/dev/zero`` or a FIFO
    that never ends is refused without filling memory)."""
    most = limit("recipe_bytes")
    try:
        with open(path, "rb") as stream:
            data = stream.read(most + 1)
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    if len(data) > most:
        raise RecipeError(f"{path}: more than {most:,} bytes; a recipe is at most {most:,} bytes (limit recipe_bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_yaml(text: str, where: str) -> Any:
    """Parse ``text`` (a file's, or a value's) and check its bounds.

    Raises:
        RecipeError: ``where``, the line, and what is wrong; never a traceback.
    """
    try:
        value = yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader: plain data only
    except _DuplicateKey as dup:
        raise RecipeError(
            f"{where}: line {dup.second}: key {dup.key!r} is given twice in one section (first at line {dup.first}); "
            "keep one (the later one would silently replace the earlier)"
        ) from None
    except RecursionError:
        raise RecipeError(f"{where}: nested deeper than YAML can be read (limit recipe_depth)") from None
    except yaml.YAMLError as exc:
        if "recursive" in _problem(exc):  # `&a [*a]`: an alias inside the node it names
            raise RecipeError(f"{where}{_mark(exc)}: {_SELF_REFERENCE}") from None
        raise RecipeError(f"{where}: not valid YAML{_mark(exc)}: {_problem(exc)}") from None
    check_bounds(value, where)
    return value


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or "invalid YAML"


def check_bounds(value: Any, where: str) -> None:
    """Refuse a value that refers to itself, or whose aliases expand it beyond ``recipe_values``
    values or ``recipe_depth`` levels; counted without expanding (an alias is one shared object)."""
    most_values, most_depth = limit("recipe_values"), limit("recipe_depth")
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, depth) of a shared subtree
    open_now: set[int] = set()

    def too_deep() -> RecipeError:
        return RecipeError(
            f"{where}: nested more than {most_depth} levels deep (limit recipe_depth); a recipe is 4 deep"
        )

    def measure(node: Any, level: int) -> tuple[int, int]:
        if not isinstance(node, dict | list):
            return 1, 0
        if level > most_depth:  # checked on the way down: no deep recursion here either
            raise too_deep()
        if id(node) in open_now:
            raise RecipeError(f"{where}: {_SELF_REFERENCE}")
        if id(node) not in measured:
            open_now.add(id(node))
            children = [measure(child, level + 1) for child in (node.values() if isinstance(node, dict) else node)]
            open_now.discard(id(node))
            measured[id(node)] = (1 + sum(n for n, _ in children), 1 + max((d for _, d in children), default=0))
        if level + measured[id(node)][1] - 1 > most_depth:
            raise too_deep()
        return measured[id(node)]

    total, _ = measure(value, 1)
    if total > most_values:
        raise RecipeError(
            f"{where}: expands to {total:,} values, more than the {most_values:,} edgeseg accepts (limit "
            "recipe_values; YAML aliases and merge keys repeat what they point to); write the values out"
        )
