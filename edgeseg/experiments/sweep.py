"""``edgeseg sweep``: every combination of a grid of recipe values, built on one shared cache.

Each variant is an ordinary build (``runs/<name>/variants/<variant>/``) whose stages are keyed
exactly as ``edgeseg build`` keys them; the variants share one cache (``pipeline.SharedCache``),
so a stage two variants have in common (the data check, the fine-tune, a compression) runs
once and is hard-linked into the others. An interrupted sweep reruns with its finished stages
as cache hits. The summary across variants, their Pareto front and, with ``select:``, the one
artifact to deploy are written to ``runs/<name>/sweep/`` and ``runs/<name>/deploy/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.build.names import bench_dir, export_dir
from edgeseg.errors import EdgesegError, GateError, RecipeError
from edgeseg.limits import limit
from edgeseg.recipe import Recipe, apply_overrides
from edgeseg.recipe.parse import check_bounds, parse_yaml
from edgeseg.recipe.select import count_variants

SCHEMA = "edgeseg.sweep/1"
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
RANGE = re.compile(rf"({NUMBER})\.\.({NUMBER})(:log)?")  # --grid key=0.3..0.7, 4..12, 1e-4..1e-2:log


@dataclass(frozen=True)
class Progress:
    """What a sweep tells its caller as it goes (each optional)."""

    variant: Callable[..., None] | None = None  # (name, error or None, where it ran or None): each variant built
    stage: Callable[[str], None] | None = None  # a line per stage running on a Ray cluster (node, variant, elapsed)
    trial: Callable[[dict], None] | None = None  # a search's trial, as the study is told its figures


QUIET = Progress()


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict[str, Any]  # grid key -> this variant's value
    recipe: Recipe


def split_values(text: str) -> list[str]:
    """``0.35,0.5`` -> two values; ``[288,384],[360,480]`` -> two lists (commas in brackets stay)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(items: list[str]) -> dict[str, Any]:
    """``--grid key=v1,v2`` items as ``{key: [v1, v2]}``; values are YAML, as ``--set`` reads them.
    ``key=low..high`` (``:log``) is a range, which only a search (``sweep.search``, ``--trials``) takes."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise RecipeError(f"--grid {item!r}: expected dotted.key=value1,value2 (e.g. export.input_size=[288,384])")
        if key in grid:
            raise RecipeError(f"--grid {key}: given twice; list every value in one --grid")
        span = RANGE.fullmatch(text.strip())
        grid[key] = _range(key, span) if span else [_grid_value(key, value) for value in split_values(text)]
    check_bounds({k: v for k, v in grid.items() if isinstance(v, list)}, "--grid")
    return grid


def _range(key: str, span: re.Match):
    """``--grid key=low..high[:log]``: a range for ``sweep.search`` to draw from."""
    from pydantic import ValidationError

    from edgeseg.recipe.select import SearchRange

    low, high = (parse_yaml(text, f"--grid {key}") for text in span.group(1, 2))
    try:
        return SearchRange(low=low, high=high, log=bool(span.group(3)))
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise RecipeError(f"--grid {key}: {span.group(0)}: {reason}") from None


def _grid_value(key: str, text: str) -> Any:
    """One ``--grid`` value, read as a recipe file is (bounded, no key twice); empty is refused."""
    if not text:
        raise RecipeError(f"--grid {key}: an empty value; list values as key=v1,v2 (e.g. train.epochs=10,20)")
    try:
        return parse_yaml(text, f"--grid {key}")
    except RecipeError as exc:
        if "not valid YAML" not in str(exc):
            raise
        raise RecipeError(f"--grid {key}: {text!r} is not a value (YAML: 3, 0.5, [288, 384], fp32)") from None


def variants(recipe: Recipe, grid: dict[str, list[Any]], source: str) -> list[Variant]:
    """One validated recipe per combination, in grid order.

    Each value is first validated alone on the base recipe, so an unknown key or a bad value is
    an error naming that grid item; then every combination (fields that only clash together).
    """
    count_variants(grid, f"{source}: sweep.grid")
    base = recipe.model_copy(update={"sweep": None, "select": None})
    check_each_value(base, grid, source)
    out, names = [], set()
    for combination in itertools.product(*grid.values()):
        settings = dict(zip(grid, combination, strict=True))
        where = "sweep.grid " + ", ".join(f"{k}={_text(v)}" for k, v in settings.items())
        name = variant_name(settings)
        if name in names:
            name = f"{name}-{_digest(settings)}"
        names.add(name)
        variant = with_settings(base, settings, source, where)
        full_name = f"{recipe.name}.{name}"[: limit("name_chars")]
        out.append(Variant(name, settings, variant.model_copy(update={"name": full_name})))
    return out


def check_each_value(base: Recipe, grid: dict[str, list[Any]], source: str) -> None:
    for key, values in grid.items():
        for value in values:
            with_settings(base, {key: value}, source, f"sweep.grid {key}={_text(value)}")


def with_settings(base: Recipe, settings: dict[str, Any], source: str, where: str) -> Recipe:
    overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
    try:
        return apply_overrides(base, overrides, source)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def variant_name(settings: dict[str, Any]) -> str:
    """A readable directory name: ``target_macs-0.35_input_size-288x384``."""
    parts = []
    for key, value in settings.items():
        short = re.sub(r"\[\d+\]", "", key.split(".")[-1])
        text = "x".join(map(str, value)) if isinstance(value, list) and all(_scalar(v) for v in value) else value
        text = re.sub(r"[^A-Za-z0-9_.]+", "", str(text)) if _scalar(text) else _digest(value)
        parts.append(f"{short}-{text[:24] or _digest(value)}")
    name = "_".join(parts)
    # a directory name: past name_chars (many grid keys), a readable head and a digest of the whole
    most = limit("name_chars")
    return name if len(name) <= most else f"{name[: most - 9]}-{_digest(settings)}"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def _text(value: Any) -> str:
    return json.dumps(value)


# --------------------------------------------------------------------------------------------
# Running


def run_sweep(
    recipe: Recipe,
    grid: dict[str, list[Any]],
    runs_root: Path,
    *,
    source: str,
    jobs: int = 1,
    ray: str | None = None,
    progress: Progress = QUIET,
) -> dict:
    """Build every variant on the shared cache, then write the summary (and the decision).
    With ``ray`` (a cluster address, ``auto`` or ``local``) each variant is a Ray task.

    Returns:
        The summary as ``sweep.json`` holds it.

    Raises:
        GateError: ``select:`` found no artifact within its limits (exit 3), after writing.
        EdgesegError: a variant failed (the others were built; the summary says which).
    """
    all_variants = variants(recipe, grid, source)
    root = runs_root / recipe.name
    with session(root, ray, f"edgeseg sweep {recipe.name}"):
        failures = build_all(all_variants, root, jobs, progress, ray)
        summary = write_summary(recipe, grid, all_variants, root, failures)
    return finish(summary, failures, len(all_variants), root)


@contextlib.contextmanager
def session(root: Path, ray: str | None, holder: str):
    """A sweep's or study's hold on ``root``: the cluster joined first (an unreachable one fails
    before anything is written), then the lock that keeps a second ``holder`` of it out."""
    from edgeseg.build.lock import locked

    if ray is not None:
        from edgeseg.experiments.ray_executor import connect

        connect(ray)
    with locked(root / "variants", holder):
        yield


def finish(summary: dict, failures: dict[str, str], count: int, root: Path) -> dict:
    """The summary, once written; a failed variant or a budget nothing fits raises here."""
    if failures:
        first = next(iter(failures.items()))
        raise EdgesegError(
            f"{len(failures)} of {count} variant(s) failed (the others are built; "
            f"see {root / 'sweep' / 'sweep.json'}); first: {first[0]}: {first[1]}"
        )
    if summary.get("decision") and summary["decision"]["chosen"] is None:
        from edgeseg.select.decide import nothing_fits

        raise nothing_fits(summary["decision"], str(root / "sweep" / "decision.json"))
    return summary


def variant_dir(root: Path, variant: Variant) -> Path:
    return root / "variants" / variant.name


def _shared(root: Path, all_variants: list[Variant]):
    from edgeseg.build.pipeline import FileClaims, SharedCache

    known = {variant_dir(root, v) for v in all_variants}
    earlier = set((root / "variants").glob("*")) if (root / "variants").is_dir() else set()  # an older grid's
    runs = tuple(sorted(p for p in known | earlier if not p.name.startswith(".")))
    return SharedCache(runs=runs, claims=FileClaims(root / "variants" / ".locks"))


def build_all(
    all_variants: list[Variant], root: Path, jobs: int, progress: Progress = QUIET, ray: str | None = None
) -> dict[str, str]:
    """Build each variant (``jobs`` at once, or as Ray tasks on the cluster at ``ray``);
    variant name -> error for those that failed."""
    shared = _shared(root, all_variants)
    if ray is not None:
        from edgeseg.experiments.ray_executor import build_on_ray

        builds = [(v.name, v.recipe.model_dump(mode="json"), str(variant_dir(root, v))) for v in all_variants]
        return build_on_ray(build_variant, builds, shared, ray, progress)
    failures: dict[str, str] = {}
    if jobs <= 1:
        for variant in all_variants:
            error = build_variant(variant.recipe.model_dump(mode="json"), str(variant_dir(root, variant)), shared)
            if error:
                failures[variant.name] = error
            if progress.variant:
                progress.variant(variant.name, error)
        return failures
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker (torch's threads and a forked parent do not mix)
    workers = min(jobs, len(all_variants))  # never more processes than there are builds
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            v.name: pool.submit(build_variant, v.recipe.model_dump(mode="json"), str(variant_dir(root, v)), shared)
            for v in all_variants
        }
        for name, future in futures.items():
            error = future.result()
            if error:
                failures[name] = error
            if progress.variant:
                progress.variant(name, error)
    return failures


def build_variant(raw: dict, run_dir: str, shared, hooks: dict | None = None) -> str | None:
    """One variant's build (in this process or a worker); its error as text, None when built.
    ``hooks``: ``build``'s ``on_start`` and ``on_stage`` (a Ray task posts its stages with them).

    A gate rejection is not a failure here: the artifact is measured, marked rejected and left
    out of the decision.
    """
    from edgeseg.build.pipeline import build
    from edgeseg.recipe import recipe_from_dict

    recipe = recipe_from_dict(raw)
    try:
        build(recipe, Path(run_dir).parent, run_dir=Path(run_dir), shared=shared, **(hooks or {}))
    except GateError:
        return None
    except EdgesegError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# Summary


def collect(root: Path, all_variants: list[Variant], device: str = "local") -> list[dict]:
    """Every artifact of every built variant, with its settings and its figures on ``device``."""
    from edgeseg.select.decide import candidates_from_bench
    from edgeseg.select.gates import mark_rejected

    rows = []
    for variant in all_variants:
        run = variant_dir(root, variant)
        stage = bench_dir(device)
        path = run / stage / "bench.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())["results"]
        results = mark_rejected(results, _rejected(run))
        for candidate in candidates_from_bench(results, variant=variant.name, settings=variant.settings):
            candidate["bundle"] = str(run / export_dir(candidate["artifact"]))
            rows.append(candidate)
    return rows


def _rejected(run: Path) -> dict[str, list[str]]:
    try:
        return json.loads((run / "manifest.json").read_text())["gates"]["rejected"]
    except (OSError, ValueError, KeyError):
        return {}


def pareto(rows: list[dict]) -> set[str]:
    """Artifacts no other beats on both latency and mIoU (gate-rejected ones are never on it)."""
    from edgeseg.report.render import pareto_front

    return pareto_front(
        [{"name": r["name"], "miou": r["miou"], "latency_ms": {"p50": r["latency_ms"]}, "rejected": r["gates_rejected"]}
         for r in rows]
    )  # fmt: skip


def write_summary(
    recipe: Recipe,
    grid: dict[str, Any],
    all_variants: list[Variant],
    root: Path,
    failures: dict[str, str],
    extra: dict | None = None,
) -> dict:
    """``sweep/``: sweep.json, sweep.md, sweep.html; with ``select:`` decision.json and ``deploy/``."""
    from edgeseg._io import staged_dir
    from edgeseg.report.sweep import sweep_html, sweep_markdown

    rows = collect(root, all_variants)
    front = pareto(rows)
    summary = {
        "schema": SCHEMA,
        "recipe": recipe.name,
        "grid": grid,  # the recipe's sweep.grid with --grid applied
        "variants": [
            {"name": v.name, "settings": v.settings, "run": str(variant_dir(root, v)), "error": failures.get(v.name)}
            for v in all_variants
        ],
        "artifacts": [{**r, "pareto": r["name"] in front} for r in rows],
        "pareto_front": sorted(front),
        "stages": _stage_counts(root, all_variants),
        "decision": None,
        **(extra or {}),
    }
    decision = None
    if recipe.select is not None:
        from edgeseg.select.decide import decide

        device = recipe.select.device
        decision = decide(rows if device == "local" else collect(root, all_variants, device), recipe.select)
        summary["decision"] = decision
    with staged_dir(root / "sweep", "sweep.json") as out:
        (out / "sweep.json").write_text(json.dumps(summary, indent=2))
        (out / "sweep.md").write_text(sweep_markdown(summary))
        (out / "sweep.html").write_text(sweep_html(summary))
        if decision is not None:
            _deploy(decision, out)
    if decision is not None:
        from edgeseg.build.pipeline import publish_deploy

        publish_deploy(root / "sweep", root)
    return summary


def _deploy(decision: dict, out: Path) -> None:
    from edgeseg.select.decide import copy_bundle

    (out / "decision.json").write_text(json.dumps(decision, indent=2))
    if decision["chosen"] is not None:
        copy_bundle(Path(decision["chosen"]["bundle"]), out / "deploy", decision["chosen"], decision["device"])


def _stage_counts(root: Path, all_variants: list[Variant]) -> dict:
    """How many stage runs the sweep needed against how many its variants hold: the sharing."""
    ran, held, seconds = set(), 0, 0.0
    for variant in all_variants:
        try:
            stages = json.loads((variant_dir(root, variant) / "manifest.json").read_text())["stages"]
        except (OSError, ValueError):
            continue
        for stage in stages:
            held += 1
            if (stage["name"], stage["key"]) not in ran:
                ran.add((stage["name"], stage["key"]))
                seconds += stage["seconds"] or 0.0
    return {"distinct": len(ran), "in_variants": held, "seconds_of_distinct_stages": round(seconds, 1)}
