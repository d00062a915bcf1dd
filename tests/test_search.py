"""``sweep.search``: an Optuna study over the grid's space (issue 35, item 3): the space, the
score of a trial, the stored study resuming after its driver was killed."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_sweep import candidate, edgeseg, select, write_recipe

from edgeseg.errors import RecipeError

from conftest import REPO

needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna is not installed")

SPACE = {"train.lr": {"low": 0.001, "high": 0.1, "log": True}, "export.input_size": [[64, 80], [32, 40]]}


# --------------------------------------------------------------------------------------------
# The space


def test_ranges_need_a_search_and_a_search_needs_what_it_scores(tiny_recipe):
    with pytest.raises(RecipeError, match=r"sweep\.grid: train\.lr: a range needs a search"):
        tiny_recipe(sweep={"grid": SPACE})
    recipe = tiny_recipe(sweep={"grid": SPACE, "search": {"trials": 6}})
    search = recipe.sweep.search
    assert (search.sampler, search.objectives, search.population) == ("nsga2", ["miou", "latency_ms"], 8)
    with pytest.raises(RecipeError, match=r"sweep\.search\.objectives: miou needs bench\.accuracy"):
        tiny_recipe(bench={"accuracy": False}, sweep={"grid": SPACE, "search": {"trials": 6}})
    with pytest.raises(
        RecipeError, match=r"sweep\.grid: train\.lr: low \(0\.1\) must be below high \(0\.01\) \(a range is"
    ):
        tiny_recipe(sweep={"grid": {"train.lr": {"low": 0.1, "high": 0.01}}, "search": {"trials": 2}})
    with pytest.raises(RecipeError, match="name each objective once"):
        tiny_recipe(sweep={"grid": SPACE, "search": {"trials": 2, "objectives": ["miou", "miou"]}})


@pytest.mark.parametrize(
    ("item", "low", "high", "log"),
    [
        ("train.epochs=4..12", 4, 12, False),
        ("train.lr=1e-4..1e-2:log", 1e-4, 1e-2, True),
        ("a=.3..0.7", 0.3, 0.7, False),
    ],
)
def test_a_grid_item_low_dot_dot_high_is_a_range(item, low, high, log):
    from edgeseg.experiments.sweep import parse_grid

    [span] = parse_grid([item]).values()
    assert (span.low, span.high, span.log) == (low, high, log)
    assert span.integer == isinstance(low, int)


def test_a_backwards_range_is_named_on_the_command_line():
    from edgeseg.experiments.sweep import parse_grid

    with pytest.raises(RecipeError, match=r"--grid train\.lr: 0\.1\.\.0\.01: low \(0\.1\) must be below high"):
        parse_grid(["train.lr=0.1..0.01"])


@needs_optuna
def test_the_space_becomes_optuna_distributions_and_trials_become_settings(tiny_recipe):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from edgeseg.experiments.search import distributions, settings_of

    space = tiny_recipe(sweep={"grid": {**SPACE, "train.epochs": {"low": 1, "high": 3}}, "search": {"trials": 2}})
    shapes = distributions(space.sweep.grid)
    assert isinstance(shapes["train.lr"], FloatDistribution) and shapes["train.lr"].log
    assert isinstance(shapes["train.epochs"], IntDistribution) and (
        shapes["train.epochs"].low,
        shapes["train.epochs"].high,
    ) == (1, 3)
    assert isinstance(shapes["export.input_size"], CategoricalDistribution)
    params = {"train.lr": 0.01, "export.input_size": "[32, 40]", "train.epochs": 2}
    assert settings_of(params, space.sweep.grid) == {"train.lr": 0.01, "export.input_size": [32, 40], "train.epochs": 2}


def test_a_bad_value_in_the_space_is_named_before_any_trial(tiny_recipe):
    from edgeseg.experiments.search import check_space

    recipe = tiny_recipe(sweep={"grid": {"train.epochs": {"low": 0, "high": 3}}, "search": {"trials": 2}})
    base = recipe.model_copy(update={"sweep": None})
    with pytest.raises(
        RecipeError, match=r"sweep\.grid train\.epochs=0: r\.yaml: train\.epochs: Input should be greater"
    ):
        check_space(base, recipe.sweep.grid, "r.yaml")


# --------------------------------------------------------------------------------------------
# A trial's score


def test_a_trial_is_scored_by_the_artifact_select_would_deploy():
    from edgeseg.experiments.search import constraint_values, trial_point

    rows = [candidate("fp32", 60.0, 10.0), candidate("int8", 59.5, 4.0), candidate("tiny", 40.0, 1.0)]
    budget = select(max_latency_ms=5, min_miou=50)
    assert trial_point(rows, budget)["name"] == "int8"
    assert constraint_values(trial_point(rows, budget), budget) == {"max_latency_ms": 4.0 - 5, "min_miou": 50 - 59.5}
    assert trial_point(rows, select())["name"] == "fp32"  # no limits: the most accurate
    # nothing fits: the best by the objective stands for the trial, infeasible by how far it misses
    strict = select(max_latency_ms=0.5, min_miou=50)
    point = trial_point(rows, strict)
    assert point["name"] == "fp32" and constraint_values(point, strict) == {"max_latency_ms": 9.5, "min_miou": -10.0}
    rejected = [candidate("fp32", 60.0, 10.0, rejected=["gates.max_latency_ms"]), candidate("int8", 50.0, 4.0)]
    assert trial_point(rejected, select())["name"] == "int8"  # a gate-rejected artifact never stands for it


@needs_optuna
def test_a_killed_drivers_running_trial_is_failed_and_asked_again_with_its_values(tmp_path, tiny_recipe):
    from optuna.trial import TrialState

    from edgeseg.experiments.search import counted, distributions, open_study, requeue_interrupted

    recipe = tiny_recipe(sweep={"grid": SPACE, "search": {"trials": 4}})
    space = recipe.sweep.grid
    study = open_study(recipe, space, recipe.sweep.search, tmp_path)
    done = study.ask(distributions(space))
    study.tell(done, [50.0, 3.0])
    running = study.ask(distributions(space))  # the driver dies here
    drawing = study.ask({"train.lr": distributions(space)["train.lr"]})  # ... or here, mid-ask
    again = open_study(recipe, space, recipe.sweep.search, tmp_path)  # the rerun
    assert (tmp_path / "search" / "optuna.db").is_file() and again.study_name == study.study_name
    assert requeue_interrupted(again, space) == [running.number]  # the half-drawn one had built nothing
    assert again.trials[running.number].state == again.trials[drawing.number].state == TrialState.FAIL
    assert counted(again) == 1  # the interrupted trials do not spend the budget
    retried = again.ask(distributions(space))
    assert retried.params == running.params and retried.number > drawing.number
    assert again.get_trials(deepcopy=False, states=(TrialState.WAITING,)) == []  # nothing else queued
    other = tiny_recipe(sweep={"grid": {**SPACE, "train.epochs": [1, 2]}, "search": {"trials": 4}})
    assert open_study(other, other.sweep.grid, other.sweep.search, tmp_path).study_name != study.study_name


def test_trials_without_a_search_on_the_command_line_need_one(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", bench={"accuracy": False})
    done = edgeseg("sweep", recipe, "--grid", "train.lr=0.001..0.1", "--runs", tmp_path / "runs", cwd=tmp_path)
    assert done.returncode == 2 and "train.lr: a range needs a search (sweep.search, or --trials N)" in done.stderr
    scored = edgeseg("sweep", recipe, "--grid", "train.lr=0.001..0.1", "--trials", "3", cwd=tmp_path)
    assert scored.returncode == 2 and "sweep.search.objectives: miou needs bench.accuracy: true" in scored.stderr
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------
# A search end to end


def trial_states(db) -> dict[str, int]:
    """The stored study's trials by state, read while its driver runs (SQLite allows it); a running
    trial counts once all its values are stored (``ask`` draws them one by one)."""
    import sqlite3

    if not db.is_file():
        return {}
    drawn = "(select count(*) from trial_params p where p.trial_id = t.trial_id) = ?"
    with sqlite3.connect(db, timeout=30) as con:
        try:
            return dict(
                con.execute(
                    f"select state, count(*) from trials t where state != 'RUNNING' or {drawn} group by state",
                    (len(SPACE),),
                ).fetchall()
            )
        except sqlite3.OperationalError:  # the tables are not there yet
            return {}


@needs_optuna
@pytest.mark.slow
def test_a_search_of_6_trials_resumes_after_its_driver_is_killed(tmp_path):
    recipe = write_recipe(
        tmp_path / "r.yaml", train={"epochs": 1}, select={"max_latency_ms": 500},
        sweep={"grid": SPACE, "search": {"trials": 6, "population": 4}},
    )  # fmt: skip
    runs, root = tmp_path / "runs", tmp_path / "runs" / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "edgeseg", "sweep", str(recipe), "--runs", str(runs)]
    driver = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while (states := trial_states(root / "search" / "optuna.db")).get("COMPLETE", 0) < 2 or not states.get("RUNNING"):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stderr.read()[-3000:]
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # mid-trial: its build dies with it
    driver.wait()
    assert not (root / "sweep").exists()

    again = edgeseg("sweep", recipe, "--runs", runs, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((root / "sweep" / "sweep.json").read_text())
    trials = summary["search"]["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    assert len(complete) == 6 and summary["search"]["budget"] == 6
    interrupted = [t for t in trials if t["state"] == "fail"]
    assert len(interrupted) == 1 and interrupted[0]["error"] is None  # killed, not broken: and asked again
    for t in interrupted:
        assert any(c["settings"] == t["settings"] and c["number"] > t["number"] for c in complete)
    assert {t["variant"] for t in complete} == {v["name"] for v in summary["variants"]}
    assert all(t["values"]["latency_ms"] > 0 and t["feasible"] for t in complete)
    assert summary["decision"]["chosen"]["name"] in {a["name"] for a in summary["artifacts"]}
    assert set(summary["search"]["best_trials"]) <= {t["number"] for t in complete}
    assert "<section id='search'>" in (root / "sweep" / "sweep.html").read_text()
    assert again.stderr.count("trial ") >= 6 - 2  # the rerun ran only the trials left
    finished = edgeseg("sweep", recipe, "--runs", runs, cwd=tmp_path)  # the budget is spent: nothing runs
    assert finished.returncode == 0 and "trial " not in finished.stderr
