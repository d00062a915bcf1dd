"""Validation of a parsed recipe, and the one-line messages that name the file, field and fix."""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from edgeseg.errors import RecipeError
from edgeseg.recipe.compress import STEP_KINDS
from edgeseg.recipe.export import ExportTarget
from edgeseg.recipe.root import Recipe
from edgeseg.registry import did_you_mean


def recipe_from_dict(raw: Any, source: str = "<recipe>") -> Recipe:
    """Validate an already-parsed recipe mapping; errors name ``source``."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: the recipe must be a mapping of fields, got {_kind(raw)}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError("\n".join(_explain(source, err) for err in exc.errors())) from None


def parse_target(format_: str, precision: str, source: str = "--format/--precision") -> ExportTarget:
    """An export target given on the command line, validated like a recipe entry."""
    try:
        return ExportTarget.model_validate({"format": format_, "precision": precision})
    except ValidationError as exc:
        raise RecipeError("\n".join(_explain(source, err) for err in exc.errors())) from None


def _explain(source: str, err: dict) -> str:
    loc = _without_union_tags(tuple(err["loc"]))
    field = _dotted(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_fields(tuple(err["loc"])[:-1])
        return f"{source}: {field}: unknown field{did_you_mean(str(loc[-1]), known)}"
    if kind == "missing":
        return f"{source}: {field}: required field is missing"
    if kind in ("literal_error", "union_tag_invalid"):
        expected = re.findall(
            r"'([^']*)'|(\d+)", err["ctx"]["expected_tags" if kind == "union_tag_invalid" else "expected"]
        )
        options = [a or b for a, b in expected]
        value = err["ctx"]["tag"] if kind == "union_tag_invalid" else err["input"]
        field = f"{field}.kind" if kind == "union_tag_invalid" else field
        return f"{source}: {field}: {value!r} is not one of {', '.join(options)}{did_you_mean(str(value), options)}"
    if kind == "union_tag_not_found":
        return f"{source}: {field}.kind: required field is missing (one of {', '.join(STEP_KINDS)})"
    message = err["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{source}: {field}: {message}"
    return f"{source}: {field}: {message}, got {_short(err.get('input'))}"


def _without_union_tags(loc: tuple) -> tuple:
    """pydantic puts the tag of a tagged union in the location (steps.0.prune.ratio): drop it."""
    return tuple(part for i, part in enumerate(loc) if not (part in STEP_KINDS and i and isinstance(loc[i - 1], int)))


def _known_fields(loc: tuple) -> list[str]:
    """Field names of the schema section at pydantic's ``loc`` (for "did you mean")."""
    node: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if get_origin(node) in (Union, UnionType):  # the compress steps' tagged union: the tag picks the member
            node = next((m for m in get_args(node) if part in get_args(m.model_fields["kind"].annotation)), None)
            continue
        field = node.model_fields.get(part) if isinstance(node, type) and issubclass(node, BaseModel) else None
        node = getattr(field, "annotation", None)
        if get_origin(node) is list:
            node = get_args(node)[0]
        if get_origin(node) is Annotated:
            node = get_args(node)[0]
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return "an empty file" if value is None else f"a {type(value).__name__}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def dotted_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """A resolved recipe (``model_dump``) as ``{"train.epochs": 3, ...}``: the names ``--set`` takes."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(dotted_fields(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (what ``edgeseg recipe show`` prints)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
