"""Stage order, content-addressed cache and atomic publishing for ``edgeseg build``.

Each stage writes into ``runs/<recipe>/.<stage>.partial/`` and is published with one
``os.replace`` to ``runs/<recipe>/<stage>/`` after its ``stage.json`` (the completion marker)
is written. A stage directory without ``stage.json`` is never trusted. The partial directory
survives a crash so training can resume from its last epoch checkpoint; it is reused only if
it was started with the same stage key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg import __version__
from edgeseg._io import sha256_file, write_text_atomic
from edgeseg.recipe import Recipe, recipe_to_yaml

STAGE_FILE = "stage.json"
KEY_FILE = "KEY"


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, cache key, output digests and whether it was cached."""

    name: str
    root: Path
    key: str
    outputs: dict[str, str]
    seconds: float
    cached: bool
    info: dict = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    import torch
    import torchvision

    return {"edgeseg": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}


def stage_key(name: str, spec: dict, upstream: list[StageResult], versions: dict[str, str]) -> str:
    # Upstream *outputs* (not keys) enter the key: a forced rerun that changes a file invalidates
    # everything downstream, one that reproduces the same bytes does not.
    material = {"stage": name, "spec": spec, "upstream": [u.outputs for u in upstream], "versions": versions}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def run_stage(
    run_dir: Path, name: str, key: str, work: Callable[[Path], dict], *, force: bool = False
) -> StageResult:
    """Run ``work(scratch_dir) -> info`` unless ``run_dir/name`` is already complete for ``key``.

    Args:
        run_dir: ``runs/<recipe name>``.
        name: the stage name (its directory).
        key: the stage's cache key.
        work: writes the stage's files into the directory it is given and returns a small
            JSON-able info dict for the manifest.
        force: rerun even on a cache hit.
    """
    final = run_dir / name
    done = _read_stage(final)
    if done and done["key"] == key and not force:
        return StageResult(name, final, key, done["outputs"], done["seconds"], True, done.get("info", {}))

    scratch = run_dir / f".{name}.partial"
    if scratch.exists() and _read_key(scratch) != key:
        shutil.rmtree(scratch)  # left by a run with another spec: not ours to resume
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / KEY_FILE).write_text(key)
    started = time.monotonic()
    info = work(scratch)
    seconds = time.monotonic() - started
    outputs = {p.relative_to(scratch).as_posix(): sha256_file(p) for p in sorted(scratch.rglob("*")) if p.is_file() and p.name != KEY_FILE}
    record = {"stage": name, "key": key, "outputs": outputs, "seconds": round(seconds, 3), "info": info}
    (scratch / STAGE_FILE).write_text(json.dumps(record, indent=2))  # marks completion: written last
    _publish(scratch, final)
    return StageResult(name, final, key, outputs, seconds, False, info)


def _publish(scratch: Path, final: Path) -> None:
    """Swap ``scratch`` into ``final``; an old ``final`` is moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(scratch, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_stage(path: Path) -> dict | None:
    try:
        return json.loads((path / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


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


def write_manifest(run_dir: Path, recipe: Recipe, stages: list[StageResult]) -> Path:
    manifest = {
        "recipe": recipe.name,
        "recipe_sha256": recipe.digest(),
        "versions": library_versions(),
        "stages": [
            {"name": s.name, "key": s.key, "cached": s.cached, "seconds": round(s.seconds, 3), "outputs": s.outputs, "info": s.info}
            for s in stages
        ],
        "resolved_recipe": recipe.model_dump(mode="json"),
    }
    path = run_dir / "manifest.json"
    write_text_atomic(path, json.dumps(manifest, indent=2))
    return path


def build(recipe: Recipe, runs_root: Path, *, force: tuple[str, ...] = (), on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
    """Run the recipe's stages in order (train, eval, compress, one export per target), cached.

    int8 exports take the compression stage's quantized model when the recipe quantizes there;
    otherwise they calibrate their own (post-training) at export.

    ``force`` names stages to rerun even when cached (``export`` forces every export stage).
    """
    from edgeseg.eval import evaluate_checkpoint
    from edgeseg.exporters import export_bundle, prepare_job
    from edgeseg.exporters import library_versions as export_versions
    from edgeseg.train.loop import fit

    run_dir = runs_root / recipe.name
    record_recipe(run_dir, recipe)
    versions = library_versions()
    results: list[StageResult] = []

    def finish(stage: StageResult) -> StageResult:
        results.append(stage)
        if on_stage:
            on_stage(stage)
        return stage

    def train(out: Path) -> dict:
        result = fit(recipe, out, resume=True)
        return {"best_val_miou": result.best_miou, "epochs": len(result.history)}

    spec = recipe.model_dump(mode="json", include={"seed", "data", "model", "train"})
    trained = finish(run_stage(run_dir, "train", stage_key("train", spec, [], versions), train, force="train" in force))
    checkpoint = trained.root / "best.pt"

    def evaluate(out: Path) -> dict:
        metrics = evaluate_checkpoint(checkpoint, recipe.eval.split)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return {"miou": metrics["miou"], "split": recipe.eval.split}

    spec = recipe.model_dump(mode="json", include={"eval"})
    finish(run_stage(run_dir, "eval", stage_key("eval", spec, [trained], versions), evaluate, force="eval" in force))

    int8_source, int8_upstream = checkpoint, [trained]
    if recipe.compress.steps:
        from edgeseg.compress import compress_checkpoint

        def compress(out: Path) -> dict:
            report = compress_checkpoint(recipe, checkpoint, out)
            last = report["steps"][-1]
            return {"steps": [s["kind"] for s in report["steps"]], "val_miou": last["miou"], "miou_delta": last["miou_delta"]}

        spec = recipe.model_dump(mode="json", include={"compress"})
        compressed = finish(run_stage(run_dir, "compress", stage_key("compress", spec, [trained], {**versions, **export_versions()}), compress, force="compress" in force))
        if recipe.compress.steps[-1].kind in ("qat", "ptq"):  # int8 artifacts take its quantizers
            int8_source, int8_upstream = compressed.root / "model.pt", [trained, compressed]

    shared = recipe.export.model_dump(mode="json", exclude={"targets"})
    for target in recipe.export.targets:
        name = f"export-{target.name}"
        source, upstream = (int8_source, int8_upstream) if target.precision == "int8" else (checkpoint, [trained])

        def export(out: Path, target=target, source=source) -> dict:
            meta = export_bundle(prepare_job(source, recipe, target), out)
            v = meta["verification"]
            return {"agreement": round(v["agreement"], 6), "reference": v["reference"], "size_mb": round(meta["artifact"]["size_bytes"] / 1e6, 3)}

        spec = {**shared, "target": target.model_dump(mode="json")}
        key = stage_key(name, spec, upstream, {**versions, **export_versions()})
        finish(run_stage(run_dir, name, key, export, force=bool({name, "export"} & set(force))))
    write_manifest(run_dir, recipe, results)
    return results
