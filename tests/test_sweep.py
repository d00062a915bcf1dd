"""``edgeseg sweep`` and ``select:``: grid parsing, cache sharing across variants, the decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
import yaml
from test_bench import validate

from edgeseg.errors import GateError, RecipeError

from conftest import REPO, tiny_recipe_dict

# --------------------------------------------------------------------------------------------
# Grid parsing and variants


def test_grid_values_split_on_top_level_commas_only():
    from edgeseg.experiments.sweep import parse_grid

    grid = parse_grid(["export.input_size=[288,384],[360,480]", "compress.steps[0].target_macs=0.35, 0.5,0.7"])
    assert grid == {"export.input_size": [[288, 384], [360, 480]], "compress.steps[0].target_macs": [0.35, 0.5, 0.7]}


@pytest.mark.parametrize(
    "item, message",
    [("export.input_size", "expected dotted.key=value1,value2"), ("=3", "expected"), ("a=[1,", "is not a value")],
)
def test_a_malformed_grid_item_is_named(item, message):
    from edgeseg.experiments.sweep import parse_grid

    with pytest.raises(RecipeError, match=message) as err:
        parse_grid([item])
    assert item.split("=")[0] in str(err.value)


def test_unknown_keys_and_bad_values_name_the_grid_item(tiny_recipe):
    from edgeseg.experiments.sweep import variants

    recipe = tiny_recipe()
    with pytest.raises(RecipeError, match=r"sweep.grid export.input_sise=\[64, 80\]: .*unknown field.*input_size"):
        variants(recipe, {"export.input_sise": [[64, 80]]}, "r.yaml")
    with pytest.raises(RecipeError, match=r"sweep.grid train.epochs=-1: .*train.epochs"):
        variants(recipe, {"train.epochs": [2, -1]}, "r.yaml")
    with pytest.raises(RecipeError, match=r"compress.steps\[0\]: the recipe's steps has 0 item"):
        variants(recipe, {"compress.steps[0].target_macs": [0.5]}, "r.yaml")


def test_every_combination_is_a_named_validated_recipe(tiny_recipe):
    from edgeseg.experiments.sweep import variants

    recipe = tiny_recipe(compress={"steps": [{"kind": "prune", "target_macs": 0.5, "epochs": 1}]})
    grid = {"compress.steps[0].target_macs": [0.35, 0.7], "export.input_size": [[64, 80], [32, 40]]}
    out = variants(recipe, grid, "r.yaml")
    assert [v.name for v in out] == [
        "target_macs-0.35_input_size-64x80",
        "target_macs-0.35_input_size-32x40",
        "target_macs-0.7_input_size-64x80",
        "target_macs-0.7_input_size-32x40",
    ]
    last = out[-1].recipe
    assert last.compress.steps[0].target_macs == 0.7 and last.export.input_size == (32, 40)
    assert last.sweep is None and last.select is None and last.name == "tiny.target_macs-0.7_input_size-32x40"


def test_set_reaches_list_items():
    from edgeseg.recipe import apply_overrides, recipe_from_dict

    recipe = recipe_from_dict(tiny_recipe_dict(export={"targets": [{"format": "onnx"}, {"format": "openvino"}]}))
    changed = apply_overrides(recipe, ["export.targets[1].precision=fp16"], "r.yaml")
    assert changed.export.targets[1].precision == "fp16" and changed.export.targets[0].precision == "fp32"


# --------------------------------------------------------------------------------------------
# The decision


def candidate(name, miou, p50, cv=0.01, peak=100.0, size=5.0, rejected=None):
    return {
        "name": name,
        "artifact": name,
        "variant": None,
        "settings": {},
        "bundle": f"/x/{name}",
        "format": "onnx",
        "precision": "int8",
        "runtime": "onnxruntime",
        "compute": "f32",
        "target": "any",
        "miou": miou,
        "latency_ms": p50,
        "latency_cv": cv,
        "peak_mb": peak,
        "size_mb": size,
        "gmacs": 1.0,
        "gates_rejected": rejected,
    }


def select(**limits):
    from edgeseg.recipe import SelectSpec

    return SelectSpec(**limits)


def test_the_most_accurate_artifact_within_every_limit_wins_with_its_margins():
    from edgeseg.select.decide import decide

    pool = [candidate("big", 70, 12.0), candidate("mid", 66, 7.0), candidate("small", 60, 4.0, peak=300)]
    decision = decide(pool, select(max_latency_ms=8, max_peak_mb=150, min_miou=55))
    assert decision["chosen"]["name"] == "mid" and decision["runner_up"] is None
    assert decision["chosen"]["margins"]["max_latency_ms"] == {
        "value": 7.0,
        "limit": 8,
        "margin": 1.0,
        "within_noise": False,
    }
    assert decision["missed"]["big"] == [
        "p50 latency (ms, batch 1) 12 is above the maximum 8 by 4 (select.max_latency_ms)"
    ]
    assert "peak memory (MB) 300" in decision["missed"]["small"][0]


def test_a_tie_within_noise_goes_to_the_faster_and_says_so():
    from edgeseg.select.decide import decide

    pool = [candidate("a", 65.1, 7.0), candidate("b", 65.0, 5.0), candidate("c", 60.0, 3.0)]
    decision = decide(pool, select(max_latency_ms=8))
    assert decision["chosen"]["name"] == "b" and decision["runner_up"]["name"] == "a"
    assert decision["within_noise_of_runner_up"] and "within noise on miou" in decision["note"]
    far = decide([candidate("a", 66.0, 7.0), candidate("b", 65.0, 5.0)], select(max_latency_ms=8))
    assert far["chosen"]["name"] == "a" and not far["within_noise_of_runner_up"]


def test_latency_within_noise_of_its_limit_is_flagged():
    from edgeseg.select.decide import decide, summary_line

    decision = decide([candidate("a", 65, 7.9, cv=0.02)], select(max_latency_ms=8))  # sigma 0.16 ms
    assert decision["chosen"]["margins"]["max_latency_ms"]["within_noise"]
    assert "(within noise)" in summary_line(decision)
    by_latency = decide([candidate("a", 65, 5.0, cv=0.1), candidate("b", 60, 5.2, cv=0.1)], select(objective="latency"))
    assert by_latency["chosen"]["name"] == "a" and by_latency["within_noise_of_runner_up"]  # tie: the more accurate


def test_nothing_fits_names_the_closest_and_how_far_it_misses():
    from edgeseg.select.decide import decide, nothing_fits

    pool = [candidate("slow", 70, 20.0), candidate("near", 66, 9.0), candidate("rejected", 66, 1.0, rejected="x")]
    decision = decide(pool, select(max_latency_ms=8))
    assert decision["chosen"] is None and decision["closest"]["name"] == "near"
    error = nothing_fits(decision, "runs/x/decision.json")
    assert isinstance(error, GateError) and error.exit_code == 3
    assert "closest is near: p50 latency (ms, batch 1) 9 is above the maximum 8 by 1" in str(error)
    assert decision["missed"]["rejected"] == ["rejected by the recipe's gates: x"]


def test_select_names_a_device_the_recipe_benches_on(tiny_recipe):
    with pytest.raises(RecipeError, match=r"select.device: 'jetsn' is not a bench device \(did you mean 'jetson'"):
        tiny_recipe(select={"device": "jetsn"}, bench={"remote": [{"name": "jetson", "host": "me@jetson"}]})


# --------------------------------------------------------------------------------------------
# A real sweep on the tiny model


def write_recipe(path, **sections):
    raw = tiny_recipe_dict(**sections)
    path.write_text(yaml.safe_dump(raw))
    return path


def edgeseg(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "edgeseg", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.mark.slow
def test_a_sweep_trains_once_summarises_selects_and_resumes_from_the_cache(tmp_path):
    recipe = write_recipe(
        tmp_path / "r.yaml",
        select={"max_latency_ms": 500},
        sweep={"grid": {"export.input_size": [[64, 80], [32, 40]]}},
    )
    done = edgeseg("sweep", recipe, "--runs", tmp_path / "runs", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    root = tmp_path / "runs" / "tiny"
    first, second = (root / "variants" / v for v in ("input_size-64x80", "input_size-32x40"))
    assert os.stat(first / "train" / "best.pt").st_ino == os.stat(second / "train" / "best.pt").st_ino  # trained once
    stages = {s["name"]: s["cached"] for s in json.loads((second / "manifest.json").read_text())["stages"]}
    assert stages["train"] and stages["data"] and not stages["export-onnx-fp32"]
    summary = json.loads((root / "sweep" / "sweep.json").read_text())
    assert [a["name"] for a in summary["artifacts"]] == ["input_size-64x80/onnx-fp32", "input_size-32x40/onnx-fp32"]
    assert summary["stages"]["distinct"] == 9 and summary["stages"]["in_variants"] == 12  # data, train, eval once
    assert summary["pareto_front"] and summary["artifacts"][0]["settings"] == {"export.input_size": [64, 80]}
    decision = json.loads((root / "decision.json").read_text())
    assert decision["chosen"]["name"] in summary["pareto_front"] or decision["within_noise_of_runner_up"]
    assert sorted(p.name for p in (root / "deploy").iterdir()) == ["model.json", "model.onnx", "proof.npz"]
    assert "<section id='decision'>" in (root / "sweep" / "sweep.html").read_text()

    from edgeseg.build.devices import host_lease

    # another build timing on this CPU (in this test's $EDGESEG_LEASES, which the sweep inherits)
    with host_lease("local"):
        again = subprocess.run(
            [sys.executable, "-m", "edgeseg", "sweep", str(recipe), "--runs", str(tmp_path / "runs"), "-q"],
            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    for variant in (first, second):
        assert all(s["cached"] for s in json.loads((variant / "manifest.json").read_text())["stages"])

    impossible = edgeseg(
        "sweep", recipe, "--runs", tmp_path / "runs", "--set", "select.max_latency_ms=0.001", cwd=tmp_path
    )
    assert impossible.returncode == 3, impossible.stderr[-3000:]
    assert "no artifact meets every limit on device local; the closest is input_size-" in impossible.stderr
    assert not (root / "deploy").exists()  # no stale choice left looking current


@pytest.mark.slow
def test_parallel_variants_wait_for_a_shared_stage_instead_of_running_it_twice(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", bench={"accuracy": False, "reference": False})
    done = edgeseg(
        "sweep", recipe, "--runs", tmp_path / "runs", "--jobs", "2", "--grid", "export.input_size=[64,80],[32,40]",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "tiny" / "sweep" / "sweep.json").read_text())
    assert summary["grid"] == {"export.input_size": [[64, 80], [32, 40]]}  # the --grid, not only sweep.grid
    variants = tmp_path / "runs" / "tiny" / "variants"
    trains = [json.loads((v / "train" / "stage.json").read_text()) for v in variants.iterdir() if v.name[0] != "."]
    assert len(trains) == 2 and trains[0]["started_at"] == trains[1]["started_at"]  # one training run, linked
    # the two variants' benches took turns on this CPU: the later one timed after the first ended
    benches = sorted(timing_span(v / "bench") for v in variants.iterdir() if v.name[0] != ".")
    assert len(benches) == 2 and benches[1][0] >= benches[0][1] - 1, benches  # (start is to the second)


def timing_span(stage_dir) -> tuple[float, float]:
    """When a timing stage got its device (the local CPU) and when it ended."""
    stage = json.loads((stage_dir / "stage.json").read_text())
    start = datetime.strptime(stage["started_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    lease = stage["info"]["device_lease"]
    assert lease["device"] == "local"
    return start + lease["waited_s"], start + stage["seconds"]


@pytest.mark.slow
def test_a_build_with_select_deploys_the_choice_and_opens_the_report_with_it(tmp_path):
    from edgeseg.build.pipeline import build
    from edgeseg.recipe import recipe_from_dict

    recipe = recipe_from_dict(
        tiny_recipe_dict(train={"epochs": 1}, select={"max_latency_ms": 500, "objective": "latency"})
    )
    build(recipe, tmp_path)
    run = tmp_path / "tiny"
    decision = json.loads((run / "decision.json").read_text())
    assert decision["chosen"]["name"] == "onnx-fp32" and decision["objective"] == "latency"
    assert (run / "deploy" / "model.onnx").is_file() and not (run / "deploy" / "stage.json").exists()
    report = (run / "report.md").read_text()
    assert report.index("## Decision") < report.index("## Artifacts")
    metrics = json.loads((run / "metrics.json").read_text())
    validate(metrics, "metrics.schema.json")
    assert metrics["decision"]["chosen"]["name"] == "onnx-fp32" and metrics["decision"]["ranked"] == ["onnx-fp32"]
    with pytest.raises(GateError, match="closest is onnx-fp32"):
        build(recipe.model_copy(update={"select": recipe.select.model_copy(update={"max_size_mb": 0.001})}), tmp_path)
    assert not (run / "deploy").exists()
