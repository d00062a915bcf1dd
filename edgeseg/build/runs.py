"""Run management: what is under ``runs/``, how two runs differ, and what can be deleted.

Everything is read from the files a build writes (``manifest.json``, ``bench/bench.json``,
``eval/metrics.json``); nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.recipe import dotted_fields

MANIFEST = "manifest.json"


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root`` (those a build finished: they have a manifest)."""
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []


def read_manifest(run: Path) -> dict:
    """The run's manifest, once it has the shape a build writes (a stages list of named records)."""
    try:
        manifest = json.loads((run / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise EdgesegError(f"{run / MANIFEST}: unreadable ({str(exc)[:200]})") from None
    stages = manifest.get("stages") if isinstance(manifest, dict) else None
    if not isinstance(stages, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in stages):
        raise EdgesegError(f"{run / MANIFEST}: not an edgeseg manifest (no stages list)")
    return manifest


def _bench(run: Path, manifest: dict) -> list[dict]:
    stage = next((s for s in manifest["stages"] if s["name"] == "bench"), None)
    path = run / "bench" / "bench.json"
    return json.loads(path.read_text())["results"] if stage and path.is_file() else []


def _p50(result: dict) -> float | None:
    return next((r["p50_ms"] for r in result["latency"] if r.get("batch") == 1 and "p50_ms" in r), None)


def summary(run: Path) -> dict:
    """One row of ``edgeseg runs``: name, last build, stages, mIoU, fastest artifact, verdict.

    Raises:
        EdgesegError: the manifest or bench record is not what a build writes (naming it).
    """
    try:
        return _summary(run)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EdgesegError(f"{run / MANIFEST}: not an edgeseg manifest ({type(exc).__name__}: {exc})") from None


def _summary(run: Path) -> dict:
    manifest = read_manifest(run)
    stages = manifest["stages"]
    evaluated = next((s["info"].get("miou") for s in stages if s["name"] == "eval"), None)
    artifacts = [r for r in _bench(run, manifest) if r.get("role") != "reference" and _p50(r) is not None]
    fastest = min(artifacts, key=_p50, default=None)
    rejected = manifest["gates"]["rejected"]
    return {
        "name": manifest["recipe"],
        "path": str(run),
        "last_build": max((s["finished_at"] or "" for s in stages), default=None),
        "stages": len(stages),
        "ran": sum(not s["cached"] for s in stages),
        "miou": evaluated,
        "fastest": {"name": fastest["name"], "p50_ms": _p50(fastest)} if fastest else None,
        "deployable": not rejected,
        "rejected": sorted(rejected),
    }


def compare(a: Path, b: Path) -> dict:
    """What changed from run ``a`` to run ``b``: recipe fields, stage keys, figures."""
    ma, mb = read_manifest(a), read_manifest(b)
    ra, rb = dotted_fields(ma["resolved_recipe"]), dotted_fields(mb["resolved_recipe"])
    recipe = {k: [ra.get(k), rb.get(k)] for k in sorted(ra.keys() | rb.keys()) if ra.get(k) != rb.get(k)}
    ka, kb = ({s["name"]: s["key"] for s in m["stages"]} for m in (ma, mb))
    stages = {n: [ka.get(n), kb.get(n)] for n in dict.fromkeys([*ka, *kb]) if ka.get(n) != kb.get(n)}
    figures = {}
    for side, run, manifest in (("a", a, ma), ("b", b, mb)):
        for result in _bench(run, manifest):
            accuracy = (result.get("accuracy") or {}).get("miou")
            figures.setdefault(result["name"], {})[side] = {"p50_ms": _p50(result), "miou": accuracy}
    evals = [summary(a)["miou"], summary(b)["miou"]]
    return {"a": str(a), "b": str(b), "recipe": recipe, "stage_keys": stages, "eval_miou": evals, "artifacts": figures}


@dataclass(frozen=True)
class Removable:
    path: Path
    bytes: int
    why: str


def _size(path: Path) -> int:
    """Bytes ``path`` holds itself: links count as links (never followed), so a link to a big
    folder elsewhere is not reported as space that cleaning frees."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path, followlinks=False):
        total += sum(os.lstat(os.path.join(folder, name)).st_size for name in files)
    return total


def _inside(path: Path, root: Path) -> bool:
    """``path`` itself (a link: the link, not its target) lies inside ``root``."""
    where = path.parent.resolve() / path.name if path.is_symlink() else path.resolve()
    return where.is_relative_to(root.resolve())


def _remove(path: Path) -> None:
    """A link is removed as a link; a folder's links are unlinked, never followed (rmtree)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def removable(run: Path) -> list[Removable]:
    """What a build no longer needs in ``run``: archived recipes, scratch of interrupted builds,
    and stage directories the current manifest does not list (e.g. a dropped export target)."""
    try:
        current = {s["name"] for s in read_manifest(run)["stages"]}
    except (KeyError, TypeError):
        raise EdgesegError(f"{run / MANIFEST}: not an edgeseg manifest (no stages list)") from None
    found = [Removable(p, _size(p), "archived recipe") for p in sorted(run.glob("recipe.*.yaml"))]
    for path in sorted(run.glob(".*")):
        if path.is_dir() and path.name.endswith((".partial", ".old")):
            found.append(Removable(path, _size(path), "scratch of an interrupted build"))
    for path in sorted(run.iterdir()):
        if path.is_dir() and (path / "stage.json").is_file() and path.name not in current:
            found.append(Removable(path, _size(path), "a stage no current recipe refers to"))
    return found


def clean(root: Path, *, dry_run: bool) -> tuple[list[Removable], list[str]]:
    """Remove what ``removable`` finds in every run under ``root`` (nothing with ``dry_run``:
    the same list, so ``--dry-run`` says exactly what ``clean`` removes).

    Nothing that does not resolve inside ``root`` is touched: a run directory that is a link is
    skipped (clean it where it lives), and links inside a run are removed as links. A run a
    build is writing right now is skipped (its lock is held). Each skip is said.
    """
    from edgeseg.build.lock import locked

    removed, skipped = [], []
    for run in run_dirs(root):
        if run.is_symlink() or not _inside(run, root):
            skipped.append(f"{run}: a link to {run.resolve()}; clean that directory where it lives")
            continue
        try:
            with locked(run, "edgeseg clean"):
                found = [item for item in removable(run) if _inside(item.path, root)]
                for item in [] if dry_run else found:
                    _remove(item.path)
                removed += found
        except EdgesegError as exc:  # busy, or an unreadable manifest: the other runs still get cleaned
            skipped.append(str(exc))
    return removed, skipped
