"""The ``select:`` and ``sweep:`` sections: a budget to deploy to and the grid of variants."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from edgeseg.errors import RecipeError
from edgeseg.limits import limit
from edgeseg.recipe._base import _Strict


def count_variants(grid: dict[str, list[Any]], where: str) -> int:
    """The number of combinations, refused past ``sweep_variants`` before any is made."""
    count, most = math.prod(len(values) for values in grid.values()), limit("sweep_variants")
    if count > most:
        sizes = " x ".join(str(len(values)) for values in grid.values())
        raise RecipeError(
            f"{where}: the grid makes {count:,} variants ({sizes}), more than {most} (limit sweep_variants); "
            "sweep fewer values, or split the grid into several sweeps"
        )
    return count


class SelectSpec(_Strict):
    """Pick the deployable artifact: the best by ``objective`` among those within every limit.

    Limits apply to the figures measured on ``device`` (``local``: the build machine; else a
    ``bench.remote`` entry). Latency is the batch-1 p50; a figure within ``noise_sigmas``
    standard deviations of its limit (the p50's spread across rounds) is flagged as within noise.
    """

    max_latency_ms: float | None = Field(None, gt=0)
    max_peak_mb: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)
    min_miou: float | None = Field(None, ge=0, le=100)
    objective: Literal["miou", "latency", "size"] = "miou"
    device: str = "local"
    noise_sigmas: float = Field(2.0, ge=0)
    miou_tie: float = Field(0.2, ge=0)  # mIoU points within which two artifacts count as tied


class SweepExecutor(_Strict):
    """``kind: ray`` builds each variant as a Ray task on the cluster at ``address``: host:port,
    ``auto`` (the cluster this machine joined with ``ray start``) or ``local`` (a new one here)."""

    kind: Literal["local", "ray"] = "local"
    address: str = Field("auto", min_length=1)


class SweepSpec(_Strict):
    """Variants of this recipe: every combination of the grid's values is one build.

    Keys are dotted recipe fields as ``--set`` takes them, with list items as ``[i]``
    (``compress.steps[0].target_macs``). The variants share every stage they have in common.
    """

    grid: dict[str, list[Any]] = Field(min_length=1)
    jobs: int = Field(1, ge=1, le=limit("sweep_jobs"))
    # where the variants are built: here (jobs at once), or as Ray tasks on a cluster
    executor: SweepExecutor = SweepExecutor()

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"sweep.grid.{key}: give at least one value")
            if key.startswith(("sweep", "name")):
                raise ValueError(f"sweep.grid.{key}: a sweep varies the build, not its name or the sweep itself")
        try:
            count_variants(grid, "sweep.grid")
        except RecipeError as exc:
            raise ValueError(str(exc).removeprefix("sweep.grid: ")) from None
        return grid
