"""Lookups in plain dict registries that fail with the known names and a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from edgeseg.errors import UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return " (did you mean 'x'?)" for the closest known name, or "" if none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def table(entries: Iterable[T], kind: str, key: Callable[[T], str] = lambda entry: entry.name) -> dict[str, T]:
    """A registry from ``entries`` by name; a name given twice is a programming error.

    Raises:
        ValueError: naming the duplicate (as torchvision's ``register_model`` does).
    """
    registry: dict[str, T] = {}
    for entry in entries:
        name = key(entry)
        if name in registry:
            raise ValueError(f"{kind} '{name}' is registered twice")
        registry[name] = entry
    return registry


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """Return ``registry[name]`` or raise UnknownNameError naming the known entries.

    Args:
        registry: name -> entry.
        name: the requested name.
        kind: what the entries are ("dataset", "backbone"), for the message.

    Raises:
        UnknownNameError: (exit 2) listing the known names and the nearest match.
    """
    try:
        return registry[name]
    except KeyError:
        known = sorted(registry)
        raise UnknownNameError(
            f"unknown {kind} '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}"
        ) from None
