"""Lookups in plain dict registries that fail with the known names and a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return " (did you mean 'x'?)" for the closest known name, or "" if none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """Return ``registry[name]`` or raise KeyError naming the known entries.

    Args:
        registry: name -> entry.
        name: the requested name.
        kind: what the entries are ("dataset", "backbone"), for the message.

    Raises:
        KeyError: with a message listing the known names and the nearest match.
    """
    try:
        return registry[name]
    except KeyError:
        known = sorted(registry)
        raise KeyError(
            f"unknown {kind} '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}"
        ) from None
