"""Sweeps on a Ray cluster (issue 35, first slice): each variant a Ray task, stage keys claimed
through a Ray actor, tested on Ray's own multi-node harness (two raylets on this machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest
from test_sweep import edgeseg, write_recipe

from conftest import REPO

# edgeseg[cluster], in edgeseg[all]. Not imported here: importing Ray puts its own psutil first
# on sys.path for the rest of the process (test_lock would see it)
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@needs_ray
def test_an_unreachable_cluster_is_one_line_and_exit_12_with_nothing_written(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", sweep={"grid": {"train.epochs": [1, 2]}})
    started = time.monotonic()
    done = edgeseg("sweep", recipe, "--runs", tmp_path / "runs", "--ray", "127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 12, done.stderr[-2000:]
    assert done.stderr.strip().startswith("error: --ray 127.0.0.1:9: the Ray cluster does not answer")
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60  # not Ray's own minutes of retries
    assert not (tmp_path / "runs").exists()


@needs_ray
def test_a_study_on_an_unreachable_cluster_is_one_line_and_exit_12(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml")
    done = edgeseg(
        "study", "transfer", recipe, "--arms", "frozen", "--runs", tmp_path / "runs", "--ray", "127.0.0.1:9",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 12, done.stderr[-2000:]
    assert done.stderr.strip().startswith("error: --ray 127.0.0.1:9: the Ray cluster does not answer")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_the_recipe_can_name_the_cluster(tiny_recipe):
    from edgeseg.errors import RecipeError

    recipe = tiny_recipe(sweep={"grid": {"train.epochs": [1, 2]}, "executor": {"kind": "ray", "address": "auto"}})
    assert recipe.sweep.executor.kind == "ray"
    with pytest.raises(RecipeError, match=r"sweep\.executor\.kind"):
        tiny_recipe(sweep={"grid": {"train.epochs": [1, 2]}, "executor": {"kind": "slurm"}})


def test_one_claim_per_stage_key_and_a_dead_nodes_claim_is_handed_over(monkeypatch):
    from edgeseg.experiments import ray_executor

    alive = {"a": True, "b": True}
    monkeypatch.setattr(ray_executor, "_node_alive", lambda node: alive[node])
    claims = ray_executor.KeyClaims()
    assert claims.claim("train-k", "task1", "a") and not claims.claim("train-k", "task2", "b")
    assert claims.claim("train-k", "task1", "a")  # the same task again (a retry): still its claim
    alive["a"] = False  # task1's node died mid-stage
    assert claims.claim("train-k", "task2", "b")
    claims.release("train-k", "task1")  # a stale release does not free task2's claim
    assert not claims.claim("train-k", "task3", "b")
    claims.release("train-k", "task2")
    assert claims.claim("train-k", "task3", "b")


@pytest.fixture
def two_nodes():
    ray_cluster = pytest.importorskip("ray.cluster_utils")
    Cluster = ray_cluster.Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def same_weights(a, b) -> bool:
    import torch

    first, second = (torch.load(p, map_location="cpu", weights_only=False)["model"] for p in (a, b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def stage_keys(variant) -> dict[str, str]:
    return {s["name"]: s["key"] for s in json.loads((variant / "manifest.json").read_text())["stages"]}


@pytest.mark.slow
def test_a_sweep_on_two_ray_nodes_trains_once_and_matches_a_local_sweep(tmp_path, two_nodes):
    # one training thread in both: Ray gives a 1-CPU task OMP_NUM_THREADS=1, and a different
    # thread count sums the gradients in another order (weights equal only to rounding)
    recipe = write_recipe(
        tmp_path / "r.yaml", bench={"accuracy": False, "reference": False}, train={"threads": 1},
        sweep={"grid": {"export.input_size": [[64, 80], [32, 40]]}},
    )  # fmt: skip
    on_ray = edgeseg("sweep", recipe, "--runs", tmp_path / "ray", "--ray", two_nodes.address, cwd=tmp_path)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    nodes = {line.split("(node ")[1][:8] for line in on_ray.stderr.splitlines() if "(node " in line}
    assert len(nodes) == 2  # one variant on each raylet (1 CPU each)
    # a line per stage running across the cluster: where, which variant, which stage, how long
    stage_lines = re.findall(
        r"^node ([0-9a-f]{8}) on \S+: (input_size-\S+): (\S+) (running|done in)", on_ray.stderr, re.M
    )
    assert {state for *_, state in stage_lines} == {"running", "done in"}, on_ray.stderr[-3000:]
    assert {node for node, *_ in stage_lines} <= nodes
    local = edgeseg("sweep", recipe, "--runs", tmp_path / "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    for name in ("input_size-64x80", "input_size-32x40"):
        ray_variant = tmp_path / "ray" / "tiny" / "variants" / name
        local_variant = tmp_path / "local" / "tiny" / "variants" / name
        keys = [stage_keys(v) for v in (ray_variant, local_variant)]
        # the stages up to training key alike; later keys hash train's outputs, whose
        # history.json holds wall times, so they differ between any two runs, local ones too
        assert [k["data"] for k in keys] == [keys[1]["data"]] * 2 and keys[0]["train"] == keys[1]["train"]
        assert list(keys[0]) == list(keys[1])
        # the same weights (the files differ in torch.save's per-save serialization id)
        assert same_weights(ray_variant / "train" / "best.pt", local_variant / "train" / "best.pt")
        onnx = [(v / "export-onnx-fp32" / "model.onnx").read_bytes() for v in (ray_variant, local_variant)]
        assert onnx[0] == onnx[1]  # byte-identical artifacts
    first, second = (tmp_path / "ray" / "tiny" / "variants" / v for v in ("input_size-64x80", "input_size-32x40"))
    assert os.stat(first / "train" / "best.pt").st_ino == os.stat(second / "train" / "best.pt").st_ino  # once
    summary = json.loads((tmp_path / "ray" / "tiny" / "sweep" / "sweep.json").read_text())
    local_summary = json.loads((tmp_path / "local" / "tiny" / "sweep" / "sweep.json").read_text())
    assert summary["stages"]["distinct"] == local_summary["stages"]["distinct"]  # no stage twice
    assert [a["name"] for a in summary["artifacts"]] == [a["name"] for a in local_summary["artifacts"]]


@pytest.mark.slow
def test_a_search_runs_its_trials_as_ray_tasks(tmp_path, two_nodes):
    pytest.importorskip("optuna")
    recipe = write_recipe(
        tmp_path / "r.yaml", bench={"accuracy": False, "reference": False}, train={"threads": 1},
        sweep={"grid": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}},
               "search": {"trials": 2, "objectives": ["latency_ms"], "sampler": "random"}},
    )  # fmt: skip
    done = edgeseg(
        "sweep", recipe, "--runs", tmp_path / "runs", "--ray", two_nodes.address, "--jobs", "2", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = {line.split("(node ")[1][:8] for line in done.stderr.splitlines() if "(node " in line}
    assert len(nodes) == 2  # the two trials at once, one on each raylet
    summary = json.loads((tmp_path / "runs" / "tiny" / "sweep" / "sweep.json").read_text())
    trials = summary["search"]["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete"] and trials[0]["variant"] != trials[1]["variant"]
    assert all(t["values"]["latency_ms"] > 0 for t in trials)
    assert summary["stages"]["distinct"] < summary["stages"]["in_variants"]  # the data check ran once


@pytest.mark.slow
def test_a_study_trains_its_arms_as_ray_tasks_with_a_local_studys_figures(tmp_path, two_nodes):
    from test_study import GROUPS

    recipe = write_recipe(
        tmp_path / "r.yaml", train={"epochs": 1, "threads": 1}, eval={"splits": ["fold"]},
        data={"group_pattern": GROUPS, "validation": {"kind": "groups", "groups": ["0001"]},
              "synthetic": {"num_train": 30}},
    )  # fmt: skip
    study = ("study", "transfer", recipe, "--arms", "frozen,full")
    on_ray = edgeseg(*study, "--runs", tmp_path / "ray", "--ray", two_nodes.address, cwd=tmp_path)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "done: 2 runs (0 failed)" in on_ray.stdout
    nodes = {line.split("(node ")[1][:8] for line in on_ray.stderr.splitlines() if line.startswith("arm ")}
    assert len(nodes) == 2  # one arm on each raylet (1 CPU each)
    assert re.search(r"^node [0-9a-f]{8} on \S+: (frozen|full)-f1-s0: \S+ (running|done in)", on_ray.stderr, re.M)
    local = edgeseg(*study, "--runs", tmp_path / "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    summaries = [json.loads((tmp_path / w / "tiny" / "study" / "study.json").read_text()) for w in ("ray", "local")]
    # the driver writes the same table: each arm trained to the same weights on either executor
    assert summaries[0]["table"] == summaries[1]["table"] and len(summaries[0]["table"]) == 2


@pytest.fixture
def head_and_two_workers():
    """A head that runs no task (its death would end the cluster) and two 1-CPU workers."""
    ray_cluster = pytest.importorskip("ray.cluster_utils")

    cluster = ray_cluster.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


@pytest.mark.slow
def test_a_node_that_dies_during_an_export_costs_a_retry_not_the_sweep(tmp_path, head_and_two_workers):
    """Ray reruns the variant whose raylet was killed mid-export on the worker left; its scratch
    is never published, and its artifacts are an undisturbed local sweep's, byte for byte."""
    cluster, workers = head_and_two_workers
    sizes = {"input_size-64x80": [64, 80], "input_size-32x40": [32, 40]}
    sections = dict(
        bench={"accuracy": False, "reference": False}, train={"threads": 1},
        export={"targets": [{"format": "onnx"}, {"format": "onnx", "precision": "int8"}],
                "verify": {"on_target": False}},
    )  # fmt: skip
    recipe = write_recipe(tmp_path / "r.yaml", sweep={"grid": {"export.input_size": list(sizes.values())}}, **sections)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            [sys.executable, "-m", "edgeseg", "sweep", str(recipe), "--runs", str(tmp_path / "ray"),
             "--ray", cluster.address],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        found = _wait_for(log, driver, r"^ray: 3 nodes, 2 CPUs; this driver on node ([0-9a-f]{8})$")
        # a worker the driver is not attached to (the driver's own node ending ends the sweep)
        victim = next(w for w in workers if w.node_id[:8] != found.group(1))
        found = _wait_for(log, driver, rf"^node {victim.node_id[:8]} on \S+: (input_size-\S+): (export-\S+) running")
        cluster.remove_node(victim, allow_graceful=False)
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    variant = found.group(1)
    after_kill = log.read_text()[found.end() :]
    # Ray reran the variant on the worker left (its stages may each be too short for a line)
    elsewhere = rf"^variant {variant}: built \(node (?!{victim.node_id[:8]})[0-9a-f]{{8}} on \S+\)$"
    assert re.search(elsewhere, after_kill, re.M), after_kill[-3000:]
    killed = tmp_path / "ray" / "tiny" / "variants" / variant
    assert not list(killed.rglob(".*")), "a dead node's scratch was published"
    # the same variant swept alone, locally and undisturbed
    alone = write_recipe(tmp_path / "alone.yaml", sweep={"grid": {"export.input_size": [sizes[variant]]}}, **sections)
    local = edgeseg("sweep", alone, "--runs", tmp_path / "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    undisturbed = tmp_path / "local" / "tiny" / "variants" / variant
    assert list(stage_keys(killed)) == list(stage_keys(undisturbed))
    for name in ("export-onnx-fp32", "export-onnx-int8"):
        assert (killed / name / "model.onnx").read_bytes() == (undisturbed / name / "model.onnx").read_bytes(), name


def _wait_for(log, process, pattern: str, seconds: float = 600) -> re.Match:
    """The first line of ``log`` matching ``pattern``, while ``process`` runs."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(), re.M)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r}:\n{log.read_text()[-3000:]}")
