"""Stage order, content-addressed cache and atomic publishing for ``edgeseg build``.

Each stage writes into ``runs/<recipe>/.<stage>.partial/`` and is published with one
``os.replace`` to ``runs/<recipe>/<stage>/`` after its ``stage.json`` (the completion marker)
is written. A stage directory without ``stage.json`` is never trusted. A failed stage removes
its partial directory, except a resumable one's (training, compression), which keeps its epoch
and step checkpoints so that a build killed mid-stage (even by SIGKILL) resumes from the last
finished epoch; it is reused only by a build with the same stage key.

The stages themselves (what each reads and runs, in order) are data: ``edgeseg.build.stages.STAGES``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg._io import publish_dir, sha256_file, write_text_atomic
from edgeseg.build.names import STAGE_FILE, export_target
from edgeseg.build.stages import StageResult
from edgeseg.errors import STORAGE_REFUSED, GateError, StorageError, os_error_in
from edgeseg.recipe import Recipe, recipe_to_yaml
from edgeseg.versions import package_versions

log = logging.getLogger(__name__)

KEY_FILE = "KEY"


def library_versions() -> dict[str, str]:
    """What every stage depends on: edgeseg, torch and torchvision."""
    return package_versions(("torch", "torchvision"))


def stage_key(name: str, spec: dict, upstream: list[StageResult], versions: dict[str, str]) -> str:
    # Upstream *outputs* (not keys) enter the key: a forced rerun that changes a file invalidates
    # everything downstream, one that reproduces the same bytes does not.
    material = {"stage": name, "spec": spec, "upstream": [u.outputs for u in upstream], "versions": versions}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def outputs_digest(stage: StageResult) -> str:
    """One hash of a stage's output files and their sha256s."""
    return hashlib.sha256(json.dumps(stage.outputs, sort_keys=True).encode()).hexdigest()


def run_stage(
    run_dir: Path,
    name: str,
    work: Callable[[Path], dict],
    *,
    spec: dict,
    upstream: list[StageResult],
    versions: dict[str, str],
    force: bool = False,
    resumable: bool = False,
    shared: SharedCache | None = None,
) -> StageResult:
    """Run ``work(scratch_dir) -> info`` unless ``run_dir/name`` is already complete for its key.

    Args:
        run_dir: ``runs/<recipe name>``.
        name: the stage name (its directory).
        work: writes the stage's files into the directory it is given and returns a small
            JSON-able info dict for the manifest.
        spec: the recipe fields (and other facts) the stage reads.
        upstream: the published stages whose files it reads.
        versions: the versions of edgeseg and of the libraries it uses.
        force: rerun even on a cache hit.
        resumable: the stage picks up what a killed run of the same key left in its scratch
            directory (epoch and step checkpoints). Other stages start from an empty one, and
            a failure removes it.

        shared: the sweep's other run directories: a stage one of them published with the
            same key is linked in instead of run again (and, under ``--jobs``, a stage another
            variant is running is waited for, not run twice).

    The key hashes ``spec``, the upstream outputs' digests and ``versions``; all three are
    recorded in ``stage.json`` as the stage's inputs.
    """
    key = stage_key(name, spec, upstream, versions)
    with shared.lock(name, key) if shared else contextlib.nullcontext():
        return _run_stage(run_dir, name, key, work, spec, upstream, versions, force, resumable, shared)


def _run_stage(run_dir, name, key, work, spec, upstream, versions, force, resumable, shared) -> StageResult:
    final = run_dir / name
    scratch = run_dir / f".{name}.partial"
    done = _read_stage(final)
    if done and done["key"] == key and not force and _intact(final, done):
        shutil.rmtree(scratch, ignore_errors=True)  # a failed forced rerun's checkpoints: superseded
        return StageResult(name, final, True, done)
    donor = None if force or shared is None else shared.find(name, key, run_dir)
    if donor is not None:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(donor, scratch, copy_function=_link_or_copy)
        publish_dir(scratch, final, STAGE_FILE)
        return StageResult(name, final, True, _read_stage(final))

    if scratch.exists() and (not resumable or _read_key(scratch) != key):
        shutil.rmtree(scratch)  # left by a killed run: not resumable, or another spec's
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / KEY_FILE).write_text(key)
    started, started_at = time.monotonic(), _now()
    try:
        info = work(scratch)
    except BaseException as exc:  # Ctrl-C too: a failed stage leaves no half-written files behind
        if not resumable:  # (a resumable stage keeps its checkpoints to resume from)
            shutil.rmtree(scratch, ignore_errors=True)
        cause = os_error_in(exc)
        if cause is None or cause.errno not in STORAGE_REFUSED:
            raise
        raise StorageError(
            f"{cause.filename or scratch}: {cause.strerror} while stage '{name}' was writing; nothing was published "
            f"(the previous {final.name}/ is intact, if there was one). Free space and run the build again."
        ) from None
    seconds = time.monotonic() - started
    files = [p for p in sorted(scratch.rglob("*")) if p.is_file() and p.name != KEY_FILE]
    outputs = {p.relative_to(scratch).as_posix(): sha256_file(p) for p in files}
    # size and mtime: the cheap first look of a cache hit (_intact); publishing keeps both
    stats = {p.relative_to(scratch).as_posix(): [(s := p.stat()).st_size, s.st_mtime_ns] for p in files}
    inputs = {"spec": spec, "upstream": {u.name: outputs_digest(u) for u in upstream}, "versions": versions}
    record = {
        "stage": name,
        "key": key,
        "inputs": inputs,
        "outputs": outputs,
        "output_stats": stats,
        "seconds": round(seconds, 3),
        "started_at": started_at,
        "finished_at": _now(),
        "info": info,
    }
    (scratch / STAGE_FILE).write_text(json.dumps(record, indent=2))  # marks completion: written last
    publish_dir(scratch, final, STAGE_FILE)
    return StageResult(name, final, False, record)


@dataclass(frozen=True)
class FileClaims:
    """One lock file per stage key in ``lock_dir``: two variants needing the same stage at once
    (``--jobs``) run it once, the second waits and then links the first one's files."""

    lock_dir: Path

    @contextlib.contextmanager
    def lock(self, name: str, key: str):
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_dir / f"{name}-{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when closed, or when the holder dies
            yield

    def device(self, device: str):
        """The lease on a device being timed (``edgeseg.build.devices``): this machine-wide."""
        from edgeseg.build.devices import host_lease

        return host_lease(device)


@dataclass(frozen=True)
class SharedCache:
    """The run directories of one sweep, whose published stages every variant may reuse.

    ``claims`` makes one variant run a stage key at a time: ``FileClaims`` on one machine;
    on a Ray cluster, where a file lock may not exclude across hosts, ``ray_executor.RayClaims``
    claims the keys through a Ray actor.
    """

    runs: tuple[Path, ...]
    claims: FileClaims | object

    def find(self, name: str, key: str, own: Path) -> Path | None:
        for run in self.runs:
            done = _read_stage(run / name)
            if run != own and done and done["key"] == key and _intact(run / name, done):
                return run / name
        return None

    def lock(self, name: str, key: str):
        return self.claims.lock(name, key)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard links: a stage's files are never written in place after publishing, so variants can
    share them without copying gigabytes of checkpoints (a copy across file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read_stage(path: Path) -> dict | None:
    try:
        return json.loads((path / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _intact(stage_dir: Path, record: dict) -> bool:
    """The files ``stage.json`` lists are still the ones published: same size and mtime, or,
    when either moved, the same sha256. A stage whose files were overwritten (``edgeseg train
    --out`` into it, an editor, a copy) is not a cache hit: it runs again, and so does
    everything downstream of it (their keys hold its digests)."""
    stats = record.get("output_stats", {})
    for rel, digest in record.get("outputs", {}).items():
        path = stage_dir / rel
        if not path.is_file():
            return _changed(stage_dir, f"{rel} is missing")
        now = path.stat()
        if stats.get(rel) == [now.st_size, now.st_mtime_ns]:
            continue
        if sha256_file(path) != digest:
            return _changed(stage_dir, f"{rel} is not the file it published")
    return True


def _changed(stage_dir: Path, why: str) -> bool:
    log.warning("%s: %s; running the stage again", stage_dir, why)
    return False


def _read_key(path: Path) -> str | None:
    try:
        return (path / KEY_FILE).read_text().strip()
    except OSError:
        return None


def record_recipe(run_dir: Path, recipe: Recipe) -> None:
    """Write the resolved recipe into the run; a different earlier one is archived, never lost."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / "recipe.yaml"
    text = recipe_to_yaml(recipe)
    if target.exists() and target.read_text() != text:
        archived = run_dir / f"recipe.{time.strftime('%Y%m%dT%H%M%S')}.yaml"
        os.replace(target, archived)
    write_text_atomic(target, text)


def write_manifest(
    run_dir: Path, recipe: Recipe, stages: list[StageResult], rejected: dict[str, list[str]] | None = None
) -> Path:
    """``manifest.json``: every stage, and per export whether the gates rejected its artifact."""
    rejected = rejected or {}

    def verdict(stage: StageResult) -> dict:
        if not export_target(stage.name):
            return {}
        reasons = rejected.get(export_target(stage.name))
        return {"deployable": not reasons, "rejected": reasons or None}

    def entry(stage: StageResult) -> dict:
        record = stage.record
        return {
            "name": stage.name,
            "key": stage.key,
            "cached": stage.cached,
            "seconds": stage.seconds,
            "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"),
            "inputs": record.get("inputs"),
            "outputs": stage.outputs,
            "info": stage.info.as_json(),
            **verdict(stage),
        }

    manifest = {
        "recipe": recipe.name,
        "recipe_sha256": recipe.digest(),
        "versions": library_versions(),
        "gates": {"limits": recipe.gates.model_dump(mode="json"), "passed": not rejected, "rejected": rejected},
        "stages": [entry(s) for s in stages],
        "resolved_recipe": recipe.model_dump(mode="json"),
    }
    path = run_dir / "manifest.json"
    write_text_atomic(path, json.dumps(manifest, indent=2))
    return path


def build(
    recipe: Recipe,
    runs_root: Path,
    *,
    force: tuple[str, ...] = (),
    on_stage: Callable[[StageResult], None] | None = None,
    run_dir: Path | None = None,
    shared: SharedCache | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[StageResult]:
    """Run the recipe's stages (``edgeseg.build.stages.STAGES``) in order, cached and published atomically.

    ``force`` names stages to rerun even when cached, together with everything downstream of
    them; a per-target stage's family name (``export``) forces all of its instances.
    ``on_start(name)`` is called before each stage, ``on_stage(result)`` as each is published
    or found cached. ``run_dir``
    (default ``runs_root/<recipe name>``) and ``shared`` serve ``edgeseg sweep``'s variants.

    Raises:
        GateError: an artifact missed a limit of the recipe's ``gates:`` (exit 3); every stage
            and the manifest are written first, the artifact marked rejected.
    """
    from edgeseg.build import tracking
    from edgeseg.build.lock import locked

    run_dir = run_dir or runs_root / recipe.name
    # the lock first: a second build of the same run is refused before torch is even imported
    with locked(run_dir, f"edgeseg build {recipe.name}"):
        from edgeseg.exporters.export import check_toolchains

        # qemu is needed only when something will run under it: the export's check or bench's score
        emulate = recipe.export.verify.on_target or (recipe.bench.emulate and recipe.bench.accuracy)
        check_toolchains(recipe.export.targets, recipe.export.target, emulate)
        tracking.check_available(recipe)
        return _build(recipe, run_dir, force, (on_start, on_stage), shared)


def _build(recipe: Recipe, run_dir: Path, force: tuple[str, ...], hooks: tuple, shared) -> list[StageResult]:
    from edgeseg.build import tracking
    from edgeseg.build.stages import STAGES, BuildContext
    from edgeseg.exporters.export import library_versions as toolchain_versions

    ctx = BuildContext(recipe, run_dir)
    record_recipe(ctx.run_dir, recipe)
    versions = library_versions()
    everything = {**versions, **toolchain_versions()}
    rerun: set[str] = set()  # stages rerun by force in this build: their dependents rerun too
    for stage in STAGES:
        for name, target in stage.instances(recipe):
            upstream = [ctx.results[u] for u in stage.upstream(ctx, target)]
            if name in force or stage.name in force or any(u.name in rerun for u in upstream):
                rerun.add(name)

            def work(out: Path, stage=stage, target=target) -> dict:
                return _timed_run(stage, ctx, out, target, shared)

            on_start, on_stage = hooks
            if on_start:
                on_start(name)
            result = run_stage(
                ctx.run_dir,
                name,
                work,
                spec=stage.spec(ctx, target),
                upstream=upstream,
                versions=everything if stage.toolchain else versions,
                force=name in rerun,
                resumable=stage.resumable,
                shared=shared,
            )
            ctx.results[name] = result
            if on_stage:
                on_stage(result)
            if stage.gate:
                stage.gate(ctx)
    results = list(ctx.results.values())
    _publish_front_page(ctx)
    if tracking.wanted(recipe):
        tracking.log_build(recipe, run_dir, results, ctx.rejected)
    if ctx.rejected:
        _refuse(ctx)
    decision = ctx.decision
    if decision is not None and decision["chosen"] is None:
        from edgeseg.select.decide import nothing_fits

        raise nothing_fits(decision, str(run_dir / "decision.json"))
    return results


def _timed_run(stage, ctx, out: Path, target, shared) -> dict:
    """Run a stage; one that times holds its device's lease meanwhile (a cache hit never asks
    for it), and its info says how long it waited for the device (``stage.json`` ``seconds``
    counts the wait too)."""
    from edgeseg.build.devices import device_lease

    device = stage.times_on(target) if stage.times_on else None
    asked = time.monotonic()
    with device_lease(shared, device):
        waited = time.monotonic() - asked
        info = stage.run(ctx, out, target).as_json()
    return {**info, "device_lease": {"device": device, "waited_s": round(waited, 3)}} if device else info


def _publish_front_page(ctx) -> None:
    """The report beside the stages, the chosen artifact in deploy/, the manifest last."""
    for file in ("report.html", "report.md", "metrics.json"):
        write_text_atomic(ctx.run_dir / file, (ctx.results["report"].root / file).read_text())
    if "select" in ctx.results:
        publish_deploy(ctx.results["select"].root, ctx.run_dir)
    write_manifest(ctx.run_dir, ctx.recipe, list(ctx.results.values()), ctx.rejected)


def publish_deploy(selected: Path, run_dir: Path) -> None:
    """``decision.json`` and ``deploy/`` (the chosen bundle) at the top of the run; an earlier
    build's deploy/ goes when this one chose nothing, never left to look current."""
    from edgeseg._io import staged_dir

    write_text_atomic(run_dir / "decision.json", (selected / "decision.json").read_text())
    if (selected / "deploy").is_dir():
        with staged_dir(run_dir / "deploy", "model.json") as scratch:
            shutil.copytree(selected / "deploy", scratch, dirs_exist_ok=True)
    else:
        shutil.rmtree(run_dir / "deploy", ignore_errors=True)


def _refuse(ctx) -> None:
    """The gates' verdict: which artifacts missed which limit."""
    lines = [f"{name}: {reason}" for name, reasons in ctx.rejected.items() for reason in reasons]
    raise GateError(
        f"{len(ctx.rejected)} artifact(s) rejected by the recipe's gates (kept in {ctx.run_dir}, "
        "marked rejected in manifest.json):\n  " + "\n  ".join(lines)
    )
