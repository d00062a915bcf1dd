"""Experiment tracking with MLflow: one MLflow run per build, one nested run per stage that did work.

A build logs after its stages are published, from their files, so tracking can never change
what a stage computes. The parent run holds the resolved recipe (as flattened params and as
``recipe.yaml``), tags with the recipe hash, every stage's cache key and the library versions,
the eval and bench figures, ``report.html`` and the deployable bundles. A nested run per stage
that ran holds its curves: per-epoch loss, LR, img/s and val mIoU for training and for every
compression fine-tune. Cached stages were logged by the build that ran them and are not logged
again.

Where: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``<runs>/mlflow.db`` with artifacts
in ``<runs>/mlflow-artifacts/``; the experiment is ``MLFLOW_EXPERIMENT_NAME``, else
``tracking.experiment``, else "edgeseg".
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path

from edgeseg.build.names import export_target
from edgeseg.errors import DependencyError
from edgeseg.recipe import Recipe, dotted_fields

log = logging.getLogger(__name__)

INSTALL = 'pip install "edgeseg[tracking]"'
DEFAULT_EXPERIMENT = "edgeseg"


def wanted(recipe: Recipe) -> bool:
    """The recipe asks for MLflow, or the environment points at a tracking server."""
    return recipe.tracking.mlflow or bool(os.environ.get("MLFLOW_TRACKING_URI"))


def check_available(recipe: Recipe) -> None:
    """Before any stage runs: a recipe that asks for MLflow needs it installed (exit 7).

    A ``MLFLOW_TRACKING_URI`` left in the environment without MLflow installed only warns.
    """
    if not wanted(recipe):
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        if recipe.tracking.mlflow:
            raise DependencyError(f"tracking.mlflow: mlflow is not installed; install it with: {INSTALL}") from None
        log.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed (%s): this build is not tracked", INSTALL)


def store(runs_root: Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment: None lets the server decide)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    root = runs_root.resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlflow-artifacts").as_uri()


def log_build(
    recipe: Recipe,
    run_dir: Path,
    results: list,
    rejected: dict[str, list[str]],
    timeout: tuple[str, float] | None = None,
) -> str | None:
    """Log a finished build (stages published, manifest written); returns the MLflow run id.

    A tracking server that fails (unreachable, full, refusing) or does not answer within
    ``timeout`` (the bound's name for the warning, and its seconds; default the recipe's
    ``tracking.timeout_s``) in all costs the log, not the build: its stages are published and stay
    cached, the warning says how to log it later (``log_later_command``), and the build goes on.
    """
    bound, timeout_s = timeout or ("tracking.timeout_s", recipe.tracking.timeout_s)
    try:
        import mlflow
    except ImportError:
        return None
    outcome: dict = {}

    def send() -> None:
        try:
            outcome["id"] = _log_build(mlflow, recipe, run_dir, results, rejected)
        except Exception as exc:  # MlflowException, OSError, SQLAlchemy errors...
            outcome["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"

    # MLflow's client retries a failing server for minutes in the background (7 tries, doubling
    # waits); bound its tries by the same budget. A user's own MLFLOW_HTTP_* settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
    # A daemon thread: a server that never replies holds it, not the build (it dies with the process).
    worker = threading.Thread(target=send, name="edgeseg-mlflow", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        outcome["error"] = f"no answer within {bound}={timeout_s:g} s"
    if "error" in outcome:
        log.warning(
            "MLflow: this build was not logged (%s); it is complete in %s. Log it later with: %s",
            outcome["error"],
            run_dir,
            log_later_command(run_dir),
        )
        return None
    return outcome.get("id")


def log_later_command(run_dir: Path) -> str:
    return f"edgeseg runs {run_dir.parent} --log-to-mlflow {run_dir.name}"


def log_finished_run(run_dir: Path, timeout_s: float = 300.0) -> str | None:
    """Log a run a build finished earlier (its tracking server was down), from its files: the
    resolved recipe, every stage as if it had just run, the gates' verdict. Returns the run id.

    The user asked for this log and waits for it, so the bound is ``timeout_s``, not the recipe's
    ``tracking.timeout_s`` (which keeps a build from waiting on its server): a local SQLite store's
    first use creates its tables, which took over 2 s on a loaded 2-core host.

    Raises:
        DependencyError: mlflow is not installed (exit 7).
        EdgesegError: the logging failed or timed out (exit 1), or the run is not a finished build.
    """
    from edgeseg.build.names import STAGE_FILE
    from edgeseg.build.runs import MANIFEST, read_manifest
    from edgeseg.build.stages import StageResult
    from edgeseg.errors import EdgesegError
    from edgeseg.recipe import load_recipe

    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise DependencyError(f"mlflow is not installed; install it with: {INSTALL}") from None
    manifest = read_manifest(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml")
    results = []
    for stage in manifest["stages"]:
        record = json.loads((run_dir / stage["name"] / STAGE_FILE).read_text())
        results.append(StageResult(stage["name"], run_dir / stage["name"], False, record))
    rejected = manifest.get("gates", {}).get("rejected", {})
    run_id = log_build(recipe, run_dir, results, rejected, ("--timeout", timeout_s))
    if run_id is None:
        raise EdgesegError(f"{run_dir / MANIFEST}: MLflow did not log the run (see the warning above)")
    return run_id


def _log_build(mlflow, recipe: Recipe, run_dir: Path, results: list, rejected: dict[str, list[str]]) -> str:
    # MlflowClient, not the fluent API: mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI into
    # this process's environment, which would turn tracking on for every later build in it.
    uri, artifacts = store(run_dir.parent)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or recipe.tracking.experiment or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, artifacts)
    parent = _Run(client, client.create_run(experiment_id, run_name=recipe.name).info.run_id)
    with parent:
        _log_recipe(parent, recipe, run_dir, results, rejected)
        for stage in results:
            if not stage.cached:
                nested = client.create_run(experiment_id, run_name=stage.name, tags={"mlflow.parentRunId": parent.id})
                with _Run(client, nested.info.run_id) as child:
                    _log_stage(child, stage)
        _log_outputs(parent, run_dir, results)
    log.info("MLflow: run %s in experiment '%s' at %s", parent.id, name, uri)
    return parent.id


class _Run:
    """One MLflow run through an explicit client; ended FINISHED, or FAILED on an exception."""

    def __init__(self, client, run_id: str):
        self.client, self.id = client, run_id

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.client.set_terminated(self.id, "FAILED" if kind else "FINISHED")

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.id, params=items[start : start + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def log_artifact(self, path: str) -> None:
        self.client.log_artifact(self.id, path)

    def log_artifacts(self, directory: str, artifact_path: str) -> None:
        self.client.log_artifacts(self.id, directory, artifact_path)


def _log_recipe(mlflow: _Run, recipe: Recipe, run_dir: Path, results: list, rejected: dict) -> None:
    from edgeseg.versions import package_versions

    fields = dotted_fields(recipe.model_dump(mode="json"))
    mlflow.log_params({k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in fields.items()})
    mlflow.log_artifact(str(run_dir / "recipe.yaml"))
    tags = {"edgeseg.recipe_sha256": recipe.digest(), "edgeseg.deployable": str(not rejected)}
    tags.update({f"edgeseg.key.{s.name}": s.key for s in results})
    tags.update({f"edgeseg.cached.{s.name}": str(s.cached) for s in results})
    tags.update({f"edgeseg.version.{k}": v for k, v in package_versions(("torch", "torchvision")).items()})
    mlflow.set_tags(tags)


def _histories(stage) -> list[tuple[str, list[dict]]]:
    """(prefix, per-epoch records) of every training loop a stage ran."""
    found = []
    for path in sorted(stage.root.rglob("history.json")):
        relative = path.parent.relative_to(stage.root).as_posix()
        found.append(("" if relative == "." else relative.replace("/", ".") + ".", json.loads(path.read_text())))
    return found


def _log_stage(mlflow: _Run, stage) -> None:
    mlflow.set_tags({"edgeseg.key": stage.key, "edgeseg.seconds": str(stage.seconds)})
    for prefix, history in _histories(stage):
        for record in history:
            figures = _numbers(record, prefix)
            figures.pop(f"{prefix}epoch", None)
            mlflow.log_metrics(figures, step=record["epoch"])
    if numbers := _numbers(stage.info.as_json()):
        mlflow.log_metrics(numbers)


def _numbers(record: dict, prefix: str = "") -> dict[str, float]:
    """The numeric entries of ``record`` (not flags, not None), as MLflow metrics."""
    numeric = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {f"{prefix}{k}": float(v) for k, v in numeric.items()}


def _log_outputs(mlflow: _Run, run_dir: Path, results: list) -> None:
    """Eval and bench figures, the report and the bundles, on the parent run."""
    by_name = {s.name: s for s in results}
    metrics = json.loads((by_name["eval"].root / "metrics.json").read_text())
    mlflow.log_metrics({"eval.miou": metrics["miou"] or 0.0, "eval.pixel_accuracy": metrics["pixel_accuracy"] or 0.0})
    for split, scores in metrics.get("splits", {}).items():  # e.g. eval.fold.miou beside eval.val.miou
        mlflow.log_metrics({f"eval.{split}.miou": scores["miou"] or 0.0})
    for result in json.loads((by_name["bench"].root / "bench.json").read_text())["results"]:
        mlflow.log_metrics(_bench_metrics(result))
    mlflow.log_artifact(str(run_dir / "report.html"))
    mlflow.log_artifact(str(run_dir / "manifest.json"))
    for stage in results:
        if target := export_target(stage.name):
            mlflow.log_artifacts(str(stage.root), artifact_path=f"bundles/{target}")


def _bench_metrics(result: dict) -> dict[str, float]:
    # MLflow keys take no "@" (a point's runtime and precision): onnx-int8@openvino -> onnx-int8/openvino
    name = result["name"].replace(" ", "_").replace("@", "/")
    batch1 = next((r for r in result["latency"] if r.get("batch") == 1 and "p50_ms" in r), None)
    figures = {f"bench.{name}.size_mb": result["artifact"]["size_mb"]}
    if batch1:
        figures[f"bench.{name}.p50_ms"] = batch1["p50_ms"]
    if result.get("accuracy"):
        figures[f"bench.{name}.miou"] = result["accuracy"]["miou"] or 0.0
    if result["memory"].get("peak_mb") is not None:
        figures[f"bench.{name}.peak_mb"] = result["memory"]["peak_mb"]
    return figures
