"""The ``select:`` and ``sweep:`` sections: a budget to deploy to and the grid of variants."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

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


class SearchRange(_Strict):
    """A numeric range a search draws from (a grid lists values instead): integers when ``low``,
    ``high`` (and ``step``) are; ``log`` draws evenly in log space."""

    low: float | int
    high: float | int
    step: float | int | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("log needs low > 0 and no step")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))


OBJECTIVES = {"miou": "maximize", "latency_ms": "minimize", "size_mb": "minimize", "peak_mb": "minimize"}


class SweepSearch(_Strict):
    """Instead of every combination: ``trials`` builds chosen by a multi-objective Optuna study
    over the grid's values and ranges, each trial scored by the figures of the artifact ``select:``
    would deploy from it (measured on ``select.device``). The study is stored, so it resumes."""

    method: Literal["optuna"] = "optuna"
    trials: int = Field(ge=1, le=limit("sweep_variants"))
    sampler: Literal["nsga2", "tpe", "random"] = "nsga2"
    objectives: list[Literal["miou", "latency_ms", "size_mb", "peak_mb"]] = Field(["miou", "latency_ms"], min_length=1)
    population: int = Field(8, ge=2)  # NSGA-II's generation size (Optuna's default, 50, is for thousands of trials)
    storage: str | None = None  # an Optuna RDB URL; default sqlite in runs/<name>/search/
    seed: int | None = None  # the sampler's; default the recipe's (which also seeds training: changing it retrains)

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, objectives: list[str]) -> list[str]:
        if len(set(objectives)) < len(objectives):
            raise ValueError("name each objective once")
        return objectives


class SweepSpec(_Strict):
    """Variants of this recipe: every combination of the grid's values is one build, or, with
    ``search``, the trials of an Optuna study over the same space (where ranges may stand in for lists).

    Keys are dotted recipe fields as ``--set`` takes them, with list items as ``[i]``
    (``compress.steps[0].target_macs``). The variants share every stage they have in common.
    """

    # before grid, which is checked against it: a search may draw from ranges, a grid only lists
    search: SweepSearch | None = None
    grid: dict[str, list[Any] | SearchRange] = Field(min_length=1)
    jobs: int = Field(1, ge=1, le=limit("sweep_jobs"))
    # where the variants are built: here (jobs at once), or as Ray tasks on a cluster
    executor: SweepExecutor = SweepExecutor()

    @field_validator("grid", mode="before")
    @classmethod
    def _entries(cls, grid: Any) -> Any:
        """Each entry a list of values or a range, with one error naming the entry (not one per
        member of the union)."""
        if not isinstance(grid, dict):
            return grid
        out = {}
        for key, values in grid.items():
            if isinstance(values, dict):
                try:
                    values = SearchRange.model_validate(values)
                except ValidationError as exc:
                    error = exc.errors()[0]
                    field = ".".join(map(str, error["loc"]))
                    reason = error["msg"].removeprefix("Value error, ")
                    raise ValueError(
                        f"{key}{'.' + field if field else ''}: {reason} (a range is {{low, high}})"
                    ) from None
            elif not isinstance(values, list | SearchRange):
                raise ValueError(f"{key}: list its values ([a, b]) or give a range ({{low: a, high: b}})")
            out[key] = values
        return out

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any] | SearchRange], info: ValidationInfo) -> dict:
        for key, values in grid.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"{key}: give at least one value")
            if key.startswith(("sweep", "name")):
                raise ValueError(f"{key}: a sweep varies the build, not its name or the sweep itself")
        if info.data.get("search") is not None:
            return grid
        ranges = [key for key, values in grid.items() if isinstance(values, SearchRange)]
        if ranges:
            raise ValueError(
                f"{ranges[0]}: a range needs a search (sweep.search, or --trials N); a grid lists its values"
            )
        try:
            count_variants(grid, "sweep.grid")
        except RecipeError as exc:
            raise ValueError(str(exc).removeprefix("sweep.grid: ")) from None
        return grid
