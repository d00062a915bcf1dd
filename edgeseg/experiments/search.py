"""``edgeseg sweep`` with ``sweep.search``: a multi-objective Optuna study over the grid's space.

Each trial is one variant, built exactly as a grid's variant is (``sweep.build_variant``, on the
sweep's shared cache, locally or as a Ray task), then scored by the figures of the artifact
``select:`` would deploy from it, measured on ``select.device``; trials whose choice misses a
``select:`` limit are infeasible to the sampler (``Trial.set_constraint``). The study lives
in Optuna's RDB storage (SQLite in ``runs/<name>/search/`` by default): a rerun after the driver
was killed goes on from its finished trials, and reruns each interrupted trial with the same
values (its finished stages are cache hits). The summary, Pareto front and decision are the
grid's, over every trial's artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeseg.errors import DependencyError
from edgeseg.experiments.sweep import (
    QUIET,
    Progress,
    Variant,
    _digest,
    build_all,
    check_each_value,
    collect,
    finish,
    session,
    variant_name,
    with_settings,
    write_summary,
)
from edgeseg.limits import limit
from edgeseg.recipe import Recipe
from edgeseg.recipe.select import OBJECTIVES, SearchRange, SelectSpec, SweepSearch

STUDY_DIR = "search"
ERROR_ATTR = "error"  # a trial whose build failed: it counts against the budget (an interrupted one does not)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise DependencyError('optuna is not installed; install it with: pip install "edgeseg[cluster]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(space: dict[str, list[Any] | SearchRange]) -> dict:
    """Optuna's distribution for each key: a range as int or float, a list as a categorical over
    its values' JSON (Optuna's choices are scalars; a grid's may be lists such as input sizes)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, values in space.items():
        if not isinstance(values, SearchRange):
            out[key] = CategoricalDistribution([json.dumps(v) for v in values])
        elif values.integer:
            out[key] = IntDistribution(int(values.low), int(values.high), log=values.log, step=int(values.step or 1))
        else:
            out[key] = FloatDistribution(values.low, values.high, log=values.log, step=values.step)
    return out


def settings_of(params: dict[str, Any], space: dict[str, list[Any] | SearchRange]) -> dict[str, Any]:
    """A trial's parameters as the grid settings a variant is built from."""
    return {key: params[key] if isinstance(space[key], SearchRange) else json.loads(params[key]) for key in space}


def space_as_json(space: dict[str, list[Any] | SearchRange]) -> dict[str, Any]:
    return {k: v.model_dump(exclude_none=True) if isinstance(v, SearchRange) else v for k, v in space.items()}


def check_space(base: Recipe, space: dict[str, list[Any] | SearchRange], source: str) -> None:
    """Every listed value, and each range's ends, valid alone on the recipe: a bad one is an error
    naming its grid item before any trial is built."""
    ends = {k: [v.low, v.high] if isinstance(v, SearchRange) else v for k, v in space.items()}
    check_each_value(base, ends, source)


def open_study(recipe: Recipe, space: dict, search: SweepSearch, root: Path):
    """The stored study of this recipe, space and objectives (created on the first run); a changed
    space or objective list is another study in the same storage."""
    optuna = _optuna()
    storage = search.storage
    if storage is None:
        (root / STUDY_DIR).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(root / STUDY_DIR / 'optuna.db').resolve()}"
    key = {"space": space_as_json(space), "objectives": search.objectives, "sampler": search.sampler}
    key |= {"seed": search.seed} if search.seed is not None else {}  # another seed: another study
    study = optuna.create_study(
        storage=storage,
        study_name=f"{recipe.name}-{_digest(key)}",
        directions=[OBJECTIVES[o] for o in search.objectives],
        load_if_exists=True,
    )
    # seeded by the trials already held, so a resumed study does not propose its first ones again
    seed = recipe.seed if search.seed is None else search.seed
    study.sampler = make_sampler(search, seed + len(study.trials))
    return study


def make_sampler(search: SweepSearch, seed: int):
    """NSGA-II and TPE read each trial's constraints (``Trial.set_constraint``): a trial outside
    ``select:``'s limits is infeasible to them."""
    samplers = _optuna().samplers
    if search.sampler == "nsga2":
        return samplers.NSGAIISampler(population_size=search.population, seed=seed)
    if search.sampler == "tpe":
        return samplers.TPESampler(seed=seed, n_startup_trials=search.population)
    return samplers.RandomSampler(seed=seed)


def _limits(select: SelectSpec) -> dict[str, float]:
    fields = ("max_latency_ms", "max_peak_mb", "max_size_mb", "min_miou")
    return {f: getattr(select, f) for f in fields if getattr(select, f) is not None}


def requeue_interrupted(study, space: dict) -> list[int]:
    """Trials a killed driver left running: failed, and their values queued again; the numbers
    queued. A trial killed while its values were still being drawn (``ask`` stores them one by
    one) had built nothing: it is failed and not queued, since it has no settings to resume."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    queued = []
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params.keys() == space.keys():
            study.enqueue_trial(trial.params)
            queued.append(trial.number)
    return queued


def counted(study) -> int:
    """Trials that spend the budget: scored, or failed in their build (not interrupted ones)."""
    from optuna.trial import TrialState

    return sum(
        t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def trial_variant(base: Recipe, recipe: Recipe, settings: dict[str, Any], source: str) -> Variant:
    name = variant_name(settings)
    where = "sweep.search " + ", ".join(f"{k}={json.dumps(v)}" for k, v in settings.items())
    built = with_settings(base, settings, source, where)
    full_name = f"{recipe.name}.{name}"[: limit("name_chars")]
    return Variant(name, settings, built.model_copy(update={"name": full_name}))


def run_search(
    recipe: Recipe,
    space: dict[str, list[Any] | SearchRange],
    runs_root: Path,
    *,
    source: str,
    jobs: int = 1,
    ray: str | None = None,
    progress: Progress = QUIET,
) -> dict:
    """``sweep.run_sweep`` for a search: the trials (resumed from the stored study), then the
    summary over the variants they built, with the trials in it; raises as ``run_sweep`` does."""
    root = runs_root / recipe.name
    base = recipe.model_copy(update={"sweep": None, "select": None})
    check_space(base, space, source)
    with session(root, ray, f"edgeseg sweep {recipe.name}"):
        study = run_trials(recipe, space, root, source=source, jobs=jobs, ray=ray, progress=progress)
        built, failures = searched_variants(study, base, recipe, space, source)
        extra = {"search": trials_summary(study, space, recipe.sweep.search)}
        summary = write_summary(recipe, space_as_json(space), built, root, failures, extra)
    return finish(summary, failures, len(built), root)


def run_trials(
    recipe: Recipe,
    space: dict[str, list[Any] | SearchRange],
    root: Path,
    *,
    source: str,
    jobs: int,
    ray: str | None,
    progress: Progress,
):
    """Ask, build and score trials ``jobs`` at a time until ``search.trials`` are spent; the study."""
    search = recipe.sweep.search
    base = recipe.model_copy(update={"sweep": None, "select": None})
    study = open_study(recipe, space, search, root)
    requeue_interrupted(study, space)
    shapes = distributions(space)
    while (left := search.trials - counted(study)) > 0:
        asked = [study.ask(shapes) for _ in range(min(jobs, left))]
        batch = [trial_variant(base, recipe, settings_of(t.params, space), source) for t in asked]
        unique = list({v.name: v for v in batch}.values())  # a trial may repeat another's values
        failures = build_all(unique, root, jobs, progress, ray)
        for trial, variant in zip(asked, batch, strict=True):
            record = score(study, trial, variant, failures.get(variant.name), root, recipe)
            if progress.trial:
                progress.trial(record)
    return study


def score(study, trial, variant: Variant, error: str | None, root: Path, recipe: Recipe) -> dict:
    """Tell the study a trial's figures (its chosen artifact's), or its failure; the trial's record."""
    from optuna.trial import TrialState

    objectives = recipe.sweep.search.objectives
    select = recipe.select or SelectSpec()
    trial.set_user_attr("variant", variant.name)
    point = None if error else trial_point(collect(root, [variant], select.device), select)
    if point is None and not error:
        error = f"no artifact of {variant.name} was measured on {select.device}"
    values = None if point is None else [point[o] for o in objectives]
    if values is not None and None in values:
        missing = objectives[values.index(None)]
        error, values = f"{point['name']} has no {missing} (is it measured?)", None
    if error:
        trial.set_user_attr(ERROR_ATTR, error)
        study.tell(trial, state=TrialState.FAIL)
    else:
        trial.set_user_attr("artifact", point["name"])
        for limit_name, value in constraint_values(point, recipe.select).items():
            trial.set_constraint(limit_name, value)
        study.tell(trial, values)
    scored = None if values is None else dict(zip(objectives, values, strict=True))
    return {"number": trial.number, "variant": variant.name, "values": scored, "error": error}


def trial_point(rows: list[dict], select: SelectSpec) -> dict | None:
    """The artifact that stands for a trial: the one ``select:`` would deploy from its variant, or,
    when none fits the limits, the one it ranks best by its objective alone (then infeasible)."""
    from edgeseg.select.decide import decide

    usable = [r for r in rows if not r["gates_rejected"]] or rows
    if not usable:
        return None
    decision = decide(usable, select)
    if decision["chosen"] is None:
        decision = decide(usable, SelectSpec(objective=select.objective, device=select.device))
    chosen = decision["chosen"]["name"] if decision["chosen"] else usable[0]["name"]
    return next(r for r in usable if r["name"] == chosen)


def constraint_values(point: dict, select: SelectSpec | None) -> dict[str, float]:
    """Per ``select:`` limit, Optuna's convention: <= 0 within it, > 0 by how far it misses (in
    the limit's units; unmeasured is infinitely far)."""
    if select is None:
        return {}
    out = {}
    for field, bound in _limits(select).items():
        value = point[field.removeprefix("max_").removeprefix("min_")]
        if value is None:
            out[field] = float("inf")
        else:
            out[field] = bound - value if field == "min_miou" else value - bound
    return out


def trials_summary(study, space: dict, search: SweepSearch) -> dict:
    """``sweep.json``'s ``search``: every trial, and the study's own Pareto-optimal ones."""
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "variant": t.user_attrs.get("variant"),
            "settings": settings_of(t.params, space) if t.params.keys() == space.keys() else t.params,
            "values": dict(zip(search.objectives, t.values, strict=True)) if t.values else None,
            "artifact": t.user_attrs.get("artifact"),
            "feasible": all(c <= 0 for c in t.constraints.values()) if t.values else None,
            "error": t.user_attrs.get(ERROR_ATTR),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    return {
        "method": search.method,
        "sampler": search.sampler,
        "objectives": {o: OBJECTIVES[o] for o in search.objectives},
        "study": study.study_name,
        "budget": search.trials,
        "trials": trials,
        "best_trials": [t.number for t in study.best_trials],
    }


def searched_variants(study, base: Recipe, recipe: Recipe, space: dict, source: str) -> tuple[list[Variant], dict]:
    """The variants the trials built (once each), and name -> error for those that failed."""
    from optuna.trial import TrialState

    out: dict[str, Variant] = {}
    errors: dict[str, str] = {}
    scored: set[str] = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.state == TrialState.FAIL and ERROR_ATTR not in t.user_attrs:
            continue  # interrupted, and queued again
        variant = trial_variant(base, recipe, settings_of(t.params, space), source)
        out.setdefault(variant.name, variant)
        if t.state == TrialState.COMPLETE:
            scored.add(variant.name)
        else:
            errors.setdefault(variant.name, t.user_attrs[ERROR_ATTR])
    return list(out.values()), {name: e for name, e in errors.items() if name not in scored}
