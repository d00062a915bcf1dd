"""Experiment tracking against a real MLflow store (SQLite), and run management (runs, clean)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.build.pipeline import build
from edgeseg.cli import app
from edgeseg.recipe import recipe_from_dict

from conftest import tiny_recipe_dict

mlflow = pytest.importorskip("mlflow", reason='the tracking extra is not installed: pip install "edgeseg[tracking]"')
runner = CliRunner()

TINY = {"train": {"epochs": 2}, "bench": {"accuracy": True, "iterations": 4, "rounds": 2, "warmup": 1}}


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path, monkeypatch):
    """MLflow puts artifacts of a store it was pointed at under ./mlruns: never in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tracked build into a local store, then the same build again (all cached)."""
    import os

    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    root = tmp_path_factory.mktemp("runs")
    recipe = recipe_from_dict(tiny_recipe_dict(**TINY, tracking={"mlflow": True, "experiment": "tiny-exp"}))
    cwd = Path.cwd()
    os.chdir(root)  # whatever MLflow writes beside its store stays out of the checkout
    try:
        first, again = build(recipe, root), build(recipe, root)
    finally:
        os.chdir(cwd)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return root, recipe, first, again


def _runs(root, experiment="tiny-exp"):
    client = mlflow.tracking.MlflowClient(f"sqlite:///{root.resolve() / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, found


@pytest.mark.slow
def test_a_build_logs_one_run_with_a_nested_run_per_stage_that_did_work(tracked):
    import os

    root, recipe, first, again = tracked
    # nothing global leaks out of a tracked build (MLflow's fluent API exports the store's URI,
    # which would track every later build of the process into it)
    assert "MLFLOW_TRACKING_URI" not in os.environ and not (root / "mlruns").exists()
    client, found = _runs(root)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_name for r in parents] == ["tiny", "tiny"]  # both builds, newest first
    latest, earliest = parents
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == earliest.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(s.name for s in first)
    # the second build found everything cached: it logs the build, no stage twice
    assert not [r for r in found if r.data.tags.get("mlflow.parentRunId") == latest.info.run_id]
    assert latest.data.tags["edgeseg.cached.train"] == "True" and earliest.data.tags["edgeseg.cached.train"] == "False"

    params = earliest.data.params
    assert params["train.epochs"] == "2" and params["model.backbone"] == "mobilenet_v3_small"
    tags = earliest.data.tags
    assert tags["edgeseg.recipe_sha256"] == recipe.digest()
    assert tags["edgeseg.key.train"] == next(s.key for s in first if s.name == "train")
    assert "edgeseg.version.torch" in tags and tags["edgeseg.deployable"] == "True"
    metrics = earliest.data.metrics
    eval_miou = json.loads((root / "tiny" / "eval" / "metrics.json").read_text())["miou"]
    assert metrics["eval.miou"] == pytest.approx(eval_miou)
    assert {"bench.onnx-fp32.p50_ms", "bench.onnx-fp32.miou", "bench.pytorch-fp32.p50_ms"} <= set(metrics)


@pytest.mark.slow
def test_training_curves_and_artifacts_are_in_the_store(tracked):
    root, recipe, first, again = tracked
    client, found = _runs(root)
    train = next(r for r in found if r.info.run_name == "train")
    losses = client.get_metric_history(train.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2]
    history = json.loads((root / "tiny" / "train" / "history.json").read_text())
    assert [m.value for m in losses] == pytest.approx([h["loss"] for h in history])
    assert {"val_miou", "lr", "images_per_s"} <= set(train.data.metrics)
    parent = next(r for r in found if r.info.run_id == train.data.tags["mlflow.parentRunId"])
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"recipe.yaml", "report.html", "manifest.json", "bundles"} <= names
    bundle = {a.path for a in client.list_artifacts(parent.info.run_id, "bundles/onnx-fp32")}
    assert {"bundles/onnx-fp32/model.onnx", "bundles/onnx-fp32/model.json"} <= bundle


@pytest.mark.slow
def test_the_environment_chooses_the_store_and_the_experiment(tmp_path, monkeypatch):
    store = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    recipe = recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, bench={"accuracy": False, "reference": False}))
    build(recipe, tmp_path / "runs")  # tracking.mlflow is false: the variable alone turns it on
    assert store.is_file() and not (tmp_path / "runs" / "mlflow.db").exists()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("from-env")
    assert [
        r.info.run_name
        for r in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ] == ["tiny"]


@pytest.mark.slow
def test_a_failing_tracking_store_costs_the_log_not_the_build(tmp_path, monkeypatch, caplog):
    (tmp_path / "a-file").write_text("not a directory")  # no store can be made under it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    recipe = recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, bench={"accuracy": False, "reference": False}))
    results = build(recipe, tmp_path / "runs")
    assert [s.name for s in results][-1] == "report" and (tmp_path / "runs" / "tiny" / "manifest.json").is_file()
    assert "MLflow: this build was not logged" in caplog.text


@pytest.mark.slow
def test_without_tracking_nothing_is_logged(tmp_path, clean_env):
    build(recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, bench={"accuracy": False})), tmp_path)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlflow-artifacts").exists()


def test_a_recipe_asking_for_mlflow_without_it_fails_before_any_stage(tmp_path, monkeypatch, clean_env):
    import sys

    from edgeseg.errors import DependencyError

    monkeypatch.setitem(sys.modules, "mlflow", None)
    recipe = recipe_from_dict(tiny_recipe_dict(tracking={"mlflow": True}))
    with pytest.raises(
        DependencyError, match=r'tracking.mlflow: mlflow is not installed; .*pip install "edgeseg\[tracking\]"'
    ):
        build(recipe, tmp_path)
    assert not (tmp_path / "tiny").exists()


# --------------------------------------------------------------------------------------------
# edgeseg runs / clean


@pytest.mark.slow
def test_runs_lists_and_compares_builds(tracked, tmp_path):
    root = tracked[0]
    result = runner.invoke(app, ["runs", str(root), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "tiny" and row["stages"] == 6 and row["ran"] == 0 and row["deployable"]
    assert row["miou"] == pytest.approx(json.loads((root / "tiny" / "eval" / "metrics.json").read_text())["miou"])
    assert row["fastest"]["name"] != "pytorch-fp32"
    other = tmp_path / "other"
    recipe = recipe_from_dict(tiny_recipe_dict(**{**TINY, "train": {"epochs": 1}}))
    build(recipe, other)
    result = runner.invoke(app, ["runs", "--compare", str(root / "tiny"), str(other / "tiny"), "--json"])
    assert result.exit_code == 0, result.output
    diff = json.loads(result.stdout)
    assert diff["recipe"]["train.epochs"] == [2, 1] and diff["recipe"]["tracking.mlflow"] == [True, False]
    assert "train" in diff["stage_keys"] and "data" not in diff["stage_keys"]
    assert set(diff["artifacts"]["onnx-fp32"]) == {"a", "b"}
    missing = runner.invoke(app, ["runs", str(root), "--compare", "tiny", "tinyy"])
    assert missing.exit_code == 1 and "--compare tinyy: no run there (did you mean 'tiny'?)" in missing.stderr


@pytest.mark.slow
def test_clean_removes_only_what_no_build_needs(tracked, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(tracked[0] / "tiny", root / "tiny")
    run = root / "tiny"
    (run / "recipe.20260101T000000.yaml").write_text("name: old\n")
    (run / ".train.partial").mkdir()
    (run / ".train.partial" / "last.pt").write_bytes(b"\0" * 1000)
    shutil.copytree(run / "export-onnx-fp32", run / "export-onnx-int8")  # a target the recipe dropped
    before = sorted(p.name for p in run.iterdir())
    dry = runner.invoke(app, ["clean", str(root), "--dry-run"])
    assert dry.exit_code == 0 and "would remove 3 item(s)" in dry.stdout
    assert sorted(p.name for p in run.iterdir()) == before
    done = runner.invoke(app, ["clean", str(root)])
    assert done.exit_code == 0 and "removed 3 item(s)" in done.stdout
    left = sorted(p.name for p in run.iterdir())
    assert left == sorted(set(before) - {"recipe.20260101T000000.yaml", ".train.partial", "export-onnx-int8"})
    again = build(recipe_from_dict(tiny_recipe_dict(**TINY, tracking={"mlflow": False})), root)
    assert all(s.cached for s in again)  # nothing a build needs was removed


@pytest.mark.slow
def test_a_tracking_server_that_never_answers_costs_seconds_and_the_run_is_logged_later(tmp_path, monkeypatch, caplog):
    """Round two, 6: a server that accepts and never replies holds a cached build for
    tracking.timeout_s in all; `runs --log-to-mlflow` logs the finished run from its files."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept_and_say_nothing():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    recipe = recipe_from_dict(
        tiny_recipe_dict(train={"epochs": 1}, bench={"accuracy": False, "reference": False}, tracking={"timeout_s": 2})
    )
    runs = tmp_path / "runs"
    build(recipe, runs)
    started = time.monotonic()
    again = build(recipe, runs)  # every stage cached: what is left is the tracking
    assert all(s.cached for s in again) and time.monotonic() - started < 15
    assert "no answer within tracking.timeout_s=2 s" in caplog.text
    assert f"edgeseg runs {runs} --log-to-mlflow tiny" in caplog.text
    # Logging it by hand waits --timeout (not the recipe's bound, which is for builds), then says so.
    result = runner.invoke(app, ["runs", str(runs), "--log-to-mlflow", "tiny", "--timeout", "1"])
    assert result.exit_code == 1 and "no answer within --timeout=1 s" in caplog.text
    server.close()
    for connection in held:
        connection.close()

    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # later: the store answers (here the local one)
    result = runner.invoke(app, ["runs", str(runs), "--log-to-mlflow", "tiny"])
    assert result.exit_code == 0, result.output
    client = mlflow.tracking.MlflowClient(f"sqlite:///{runs.resolve() / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("edgeseg").experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_id in result.stdout
    assert sorted(r.info.run_name for r in children) == sorted(s.name for s in again)
    assert "eval.miou" in parents[0].data.metrics
