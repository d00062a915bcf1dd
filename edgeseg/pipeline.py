"""Stage order, content-addressed cache and atomic publishing for ``edgeseg build``.

Each stage writes into ``runs/<recipe>/.<stage>.partial/`` and is published with one
``os.replace`` to ``runs/<recipe>/<stage>/`` after its ``stage.json`` (the completion marker)
is written. A stage directory without ``stage.json`` is never trusted. A failed stage removes
its partial directory, except training's, which keeps its epoch checkpoints so that a build
killed mid-training (even by SIGKILL) resumes from the last epoch; it is reused only by a build
with the same stage key.

Stages: data (decode and validate every split read) → train → eval → compress → one export
per target (its verification against PyTorch is part of the stage: an artifact that fails it is
never published) → bench → report.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg import __version__
from edgeseg._io import sha256_file, write_text_atomic
from edgeseg.errors import GateError, StorageError
from edgeseg.gates import check_gates
from edgeseg.recipe import Recipe, recipe_to_yaml

STAGE_FILE = "stage.json"
KEY_FILE = "KEY"


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, whether this build found it cached, and its
    ``stage.json`` record (key, inputs, outputs with sha256, times, info)."""

    name: str
    root: Path
    cached: bool
    record: dict

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def outputs(self) -> dict[str, str]:
        return self.record["outputs"]

    @property
    def seconds(self) -> float:
        return self.record["seconds"]

    @property
    def info(self) -> dict:
        return self.record.get("info", {})


def library_versions() -> dict[str, str]:
    import torch
    import torchvision

    return {"edgeseg": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}


def stage_key(name: str, spec: dict, upstream: list[StageResult], versions: dict[str, str]) -> str:
    # Upstream *outputs* (not keys) enter the key: a forced rerun that changes a file invalidates
    # everything downstream, one that reproduces the same bytes does not.
    material = {"stage": name, "spec": spec, "upstream": [u.outputs for u in upstream], "versions": versions}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def outputs_digest(stage: StageResult) -> str:
    """One hash of a stage's output files and their sha256s."""
    return hashlib.sha256(json.dumps(stage.outputs, sort_keys=True).encode()).hexdigest()


def run_stage(
    run_dir: Path, name: str, work: Callable[[Path], dict], *, spec: dict, upstream: list[StageResult], versions: dict[str, str],
    force: bool = False, resumable: bool = False,
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
            directory (training's epoch checkpoints). Other stages start from an empty one, and
            a failure removes it.

    The key hashes ``spec``, the upstream outputs' digests and ``versions``; all three are
    recorded in ``stage.json`` as the stage's inputs.
    """
    key = stage_key(name, spec, upstream, versions)
    final = run_dir / name
    scratch = run_dir / f".{name}.partial"
    done = _read_stage(final)
    if done and done["key"] == key and not force:
        shutil.rmtree(scratch, ignore_errors=True)  # a failed forced rerun's checkpoints: superseded
        return StageResult(name, final, True, done)

    if scratch.exists() and (not resumable or _read_key(scratch) != key):
        shutil.rmtree(scratch)  # left by a killed run: not resumable, or another spec's
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / KEY_FILE).write_text(key)
    started, started_at = time.monotonic(), _now()
    try:
        info = work(scratch)
    except BaseException as exc:  # Ctrl-C too: a failed stage leaves no half-written files behind
        if not resumable:  # (training keeps its epoch checkpoints to resume from)
            shutil.rmtree(scratch, ignore_errors=True)
        if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        raise StorageError(
            f"{exc.filename or scratch}: {exc.strerror} while stage '{name}' was writing; nothing was published "
            f"(the previous {final.name}/ is intact, if there was one). Free space and run the build again."
        ) from None
    seconds = time.monotonic() - started
    outputs = {p.relative_to(scratch).as_posix(): sha256_file(p) for p in sorted(scratch.rglob("*")) if p.is_file() and p.name != KEY_FILE}
    inputs = {"spec": spec, "upstream": {u.name: outputs_digest(u) for u in upstream}, "versions": versions}
    record = {"stage": name, "key": key, "inputs": inputs, "outputs": outputs, "seconds": round(seconds, 3), "started_at": started_at,
              "finished_at": _now(), "info": info}
    (scratch / STAGE_FILE).write_text(json.dumps(record, indent=2))  # marks completion: written last
    _publish(scratch, final)
    return StageResult(name, final, False, record)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


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


def write_manifest(run_dir: Path, recipe: Recipe, stages: list[StageResult], rejected: dict[str, list[str]] | None = None) -> Path:
    """``manifest.json``: every stage, and per export whether the gates rejected its artifact."""
    rejected = rejected or {}

    def verdict(stage: StageResult) -> dict:
        if not stage.name.startswith("export-"):
            return {}
        reasons = rejected.get(stage.name.removeprefix("export-"))
        return {"deployable": not reasons, "rejected": reasons or None}

    def entry(stage: StageResult) -> dict:
        record = stage.record
        return {"name": stage.name, "key": stage.key, "cached": stage.cached, "seconds": stage.seconds,
                "started_at": record.get("started_at"), "finished_at": record.get("finished_at"), "inputs": record.get("inputs"),
                "outputs": stage.outputs, "info": stage.info, **verdict(stage)}

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


def build(recipe: Recipe, runs_root: Path, *, force: tuple[str, ...] = (), on_stage: Callable[[StageResult], None] | None = None) -> list[StageResult]:
    """Run the recipe's stages in order, cached: data check, train, eval, compress, one export
    per target (each verified against PyTorch before it is published), bench (every artifact,
    plus the fp32 reference) and report.

    With compression steps, exports take the compressed model: int8 its quantized one when the
    recipe quantizes there (else they calibrate their own, post-training, at export), fp32/fp16
    the float model before quantization.

    ``force`` names stages to rerun even when cached, together with everything downstream of
    them (``export`` forces every export stage). ``on_stage(result)`` is called as each stage
    is published or found cached.
    """
    from edgeseg.data.check import check_data, source_fingerprint
    from edgeseg.eval import evaluate_checkpoint
    from edgeseg.exporters import check_toolchains, export_bundle, prepare_job
    from edgeseg.exporters import library_versions as export_versions
    from edgeseg.train.loop import fit

    check_toolchains(recipe.export.targets)
    run_dir = runs_root / recipe.name
    record_recipe(run_dir, recipe)
    versions = library_versions()
    everything = {**versions, **export_versions()}
    results: list[StageResult] = []
    rerun: set[str] = set()  # stages forced in this build: their dependents rerun too

    def stage(name: str, work: Callable[[Path], dict], spec: dict, upstream: list[StageResult], used: dict[str, str] = versions) -> StageResult:
        named = name in force or (name.startswith("export-") and "export" in force)
        if named or any(u.name in rerun for u in upstream):
            rerun.add(name)
        result = run_stage(run_dir, name, work, spec=spec, upstream=upstream, versions=used, force=name in rerun, resumable=name == "train")
        results.append(result)
        if on_stage:
            on_stage(result)
        return result

    splits = list(dict.fromkeys(["train", "val", recipe.eval.split]))  # training reads train and val

    def check(out: Path) -> dict:
        report = check_data(recipe.data, splits, recipe.seed)
        (out / "data.json").write_text(json.dumps(report, indent=2))
        return {split: facts["samples"] for split, facts in report["splits"].items()}

    spec = {**recipe.model_dump(mode="json", include={"seed", "data"}), "splits": splits, "source": source_fingerprint(recipe.data)}
    checked = stage("data", check, spec, [])

    def train(out: Path) -> dict:
        result = fit(recipe, out, resume=True)
        return {"best_val_miou": result.best_miou, "epochs": len(result.history)}

    trained = stage("train", train, recipe.model_dump(mode="json", include={"seed", "data", "model", "train"}), [checked])
    checkpoint = trained.root / "best.pt"

    def evaluate(out: Path) -> dict:
        metrics = evaluate_checkpoint(checkpoint, recipe.eval.split)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return {"miou": metrics["miou"], "split": recipe.eval.split}

    stage("eval", evaluate, recipe.model_dump(mode="json", include={"eval"}), [checked, trained])

    sources = {"float": (checkpoint, [trained]), "int8": (checkpoint, [trained])}
    if recipe.compress.steps:
        from edgeseg.compress import compress_checkpoint

        def compress(out: Path) -> dict:
            report = compress_checkpoint(recipe, checkpoint, out)
            last = report["steps"][-1]
            return {"steps": [s["kind"] for s in report["steps"]], "val_miou": last["miou"], "miou_delta": last["miou_delta"], "gmacs": last["gmacs"],
                    "checkpoints": report["checkpoints"]}

        compressed = stage("compress", compress, recipe.model_dump(mode="json", include={"compress"}), [trained], everything)
        # Every artifact ships the compressed architecture: int8 takes the quantized model when
        # the recipe quantizes, fp32/fp16 the float model before quantization (pruned, sparse).
        checkpoints = compressed.info["checkpoints"]
        sources["int8"] = (compressed.root / checkpoints["final"], [trained, compressed])
        if checkpoints["float"]:
            sources["float"] = (compressed.root / checkpoints["float"], [trained, compressed])

    shared = recipe.export.model_dump(mode="json", exclude={"targets"})
    exports: list[StageResult] = []
    for target in recipe.export.targets:
        source, upstream = sources["int8" if target.precision == "int8" else "float"]

        def export(out: Path, target=target, source=source) -> dict:
            meta = export_bundle(prepare_job(source, recipe, target), out)
            v = meta["verification"]
            return {"agreement": round(v["agreement"], 6), "reference": v["reference"], "size_mb": round(meta["artifact"]["size_bytes"] / 1e6, 3)}

        exports.append(stage(f"export-{target.name}", export, {**shared, "target": target.model_dump(mode="json")}, upstream, everything))

    reference, reference_upstream = sources["float"]
    spec = recipe.model_dump(mode="json", include={"bench", "data", "eval", "seed"})
    benched = stage("bench", lambda out: _bench_stage(recipe, exports, reference, out), spec, [*exports, *reference_upstream], everything)

    bench_results = json.loads((benched.root / "bench.json").read_text())["results"]
    rejected = check_gates(recipe.gates, bench_results)
    spec = {"name": recipe.name, "gates": recipe.gates.model_dump(mode="json")}
    reported = stage("report", lambda out: _report_stage(recipe, bench_results, benched.root / "predictions", rejected, out), spec, [benched])
    for file in ("report.html", "report.md", "metrics.json"):  # the run's front page, beside its stages
        write_text_atomic(run_dir / file, (reported.root / file).read_text())
    write_manifest(run_dir, recipe, results, rejected)
    if rejected:
        lines = [f"{name}: {reason}" for name, reasons in rejected.items() for reason in reasons]
        raise GateError(f"{len(rejected)} artifact(s) rejected by the recipe's gates (kept in {run_dir}, marked rejected in manifest.json):\n  " + "\n  ".join(lines))
    return results


def _bench_stage(recipe: Recipe, exports: list[StageResult], reference: Path, out: Path) -> dict:
    """Every exported bundle in its own runtime, plus the fp32 PyTorch model as the reference."""
    from edgeseg.bench import BenchSpec, bench
    from edgeseg.report import prediction_file

    settings = recipe.bench
    predictions = out / "predictions"
    predictions.mkdir(exist_ok=True)
    common = {
        "threads": settings.threads, "batches": tuple(settings.batches), "iterations": settings.iterations, "budget_s": settings.time_budget_s,
        "warmup": settings.warmup, "rounds": settings.rounds, "max_images": settings.max_images, "split": recipe.eval.split, "seed": recipe.seed,
        "data": recipe.data.model_dump(mode="json") if settings.accuracy else None,
    }

    def spec(artifact: Path, name: str, **kw) -> BenchSpec:
        saved = str(prediction_file(predictions, name)) if settings.accuracy else None
        return BenchSpec(artifact=str(artifact), name=name, save_predictions=saved, **common, **kw)

    specs = [spec(stage.root, stage.name.removeprefix("export-")) for stage in exports]
    ref = spec(reference, "pytorch-fp32", runtime="torch") if settings.reference else None
    results = bench(specs, ref)
    (out / "bench.json").write_text(json.dumps({"results": results}, indent=2))
    return {"artifacts": len(results)}


def _report_stage(recipe: Recipe, bench_results: list[dict], predictions: Path, rejected: dict[str, list[str]], out: Path) -> dict:
    from edgeseg.data import dataset_info, load_split
    from edgeseg.report import write_report

    results = [{**r, "rejected": "; ".join(rejected[r["name"]])} if r["name"] in rejected else r for r in bench_results]
    samples = load_split(recipe.data, recipe.eval.split, recipe.seed, arrays=True) if recipe.bench.accuracy else None
    metrics = write_report(results, out, title=recipe.name, samples=samples, palette=dataset_info(recipe.data).palette, predictions_dir=predictions)
    return {"pareto_front": metrics["pareto_front"]}
