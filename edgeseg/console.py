"""Where edgeseg's output for people goes: stderr, so stdout carries only results (--json).

Progress bars for long loops (epochs, calibration, bench rounds) are drawn on stderr.

A bar is drawn only for a person watching: stderr is a terminal and edgeseg's logger is at INFO
(``--quiet`` and ``--json`` raise it to WARNING). Bars are transient, so a finished stage leaves
just its one-line summary. Only one live display may run at a time (rich's rule): open bars
around loops, never around a call that may open its own (NNCF's calibration draws one).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[..., None]


def showing() -> bool:
    """Whether progress should be drawn: a terminal on stderr and INFO logging."""
    return sys.stderr.isatty() and logging.getLogger("edgeseg").isEnabledFor(logging.INFO)


@contextmanager
def progress(
    description: str, total: int | None, *, detail: str = "", enabled: bool = True, **fields
) -> Iterator[Advance]:
    """A bar for ``total`` steps; yields ``advance(steps=1, **fields)``.

    Args:
        description: what runs, e.g. ``"epoch 3/40"``; a field of the task, so ``advance``
            may change it.
        total: steps in all (None: a spinner with a count).
        detail: a rich format string over ``fields`` shown after the count, e.g.
            ``"loss {task.fields[loss]:.3f}"``.
        enabled: False draws nothing (e.g. on every rank of a distributed run but the first).
        fields: initial values of the fields ``detail`` uses.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(detail),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), disable=not (enabled and showing()), transient=True) as bar:
        task = bar.add_task(description, total=total, **fields)

        def advance(steps: int = 1, **changed) -> None:
            bar.update(task, advance=steps, **changed)

        yield advance


def route_nncf_output() -> None:
    """NNCF logs to stdout through a handler of its own and draws its calibration bars on rich's
    global console: hand its records to ours (stderr, our level). Call after importing nncf."""
    from nncf.common.logging.logger import nncf_logger

    nncf_logger.handlers.clear()
    nncf_logger.propagate = True
    nncf_logger.setLevel(logging.NOTSET)
