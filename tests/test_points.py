"""Points: a bundle run by one runtime computing in one precision, measured by the build,
chosen by ``select:``, recorded in ``deploy/`` and run that way by the kit (issue 39, items 3-4)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from edgeseg.errors import RecipeError
from edgeseg.recipe import ExportTarget, recipe_from_dict
from edgeseg.targets import BF16_FLAGS, COMPUTE_PRECISIONS, TARGETS, cpu_features

from conftest import KIT, REPO, tiny_recipe_dict

HOST_HAS_BF16 = bool(cpu_features() & BF16_FLAGS)


def with_targets(*targets, target="any"):
    return tiny_recipe_dict(export={"targets": list(targets), "target": target})


@pytest.mark.parametrize(
    "targets,target,message",
    [
        (
            [{"format": "ort", "precision": "int8", "runtimes": ["openvino"]}],
            "any",
            r"export\.targets\[0\]: runtimes: openvino cannot read model\.ort: the runtimes that can are onnxruntime",
        ),
        (
            [{"format": "openvino", "compute": ["bf16"], "runtimes": ["openvino"]}],
            "x86-vnni",
            r"export: targets\[0\]\.compute: bf16 is offered only for targets whose CPUs run it \(x86-bf16\); "
            r"this bundle is for x86-vnni",
        ),
        (
            [{"format": "onnx", "compute": ["bf16"]}],
            "x86-bf16",
            r"compute: onnxruntime cannot compute in bf16: add runtimes: \[openvino\]",
        ),
        (
            [{"format": "onnx", "compute": ["f16"]}],
            "any",
            r"export\.targets\[0\]\.compute\[0\]: 'f16' is not one of f32, bf16",
        ),
        ([{"format": "onnx", "runtimes": ["openvino", "openvino"]}], "any", "lists a runtime more than once"),
    ],
    ids=["runtime-cannot-read", "bf16-off-target", "runtime-cannot-compute", "unknown-compute", "duplicate"],
)
def test_a_point_no_runtime_or_target_can_honour_is_a_recipe_error(targets, target, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(with_targets(*targets, target=target))


def test_points_are_runtimes_times_the_compute_each_honours_default_first():
    from edgeseg.build.names import point_name

    t = ExportTarget(format="onnx", precision="int8", runtimes=["onnxruntime", "openvino"], compute=["f32", "bf16"])
    assert t.points() == [("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16")]
    assert [point_name(t.name, rt, p, "onnxruntime") for rt, p in t.points()] == [
        "onnx-int8",
        "onnx-int8@openvino",
        "onnx-int8@openvino-bf16",
    ]
    assert point_name("openvino-fp16", "openvino", "bf16", "openvino") == "openvino-fp16@bf16"
    assert ExportTarget(format="ort").points() == [("onnxruntime", "f32")]


def test_targets_decide_the_compute_offered_and_the_host_only_whether_it_is_measured_here(monkeypatch):
    from edgeseg import targets

    assert [t.name for t in TARGETS.values() if "bf16" in t.compute] == ["x86-bf16"]
    assert all(t.compute[0] == "f32" for t in TARGETS.values()) and COMPUTE_PRECISIONS == ("f32", "bf16")
    monkeypatch.setattr(targets, "cpu_features", lambda: {"avx2", "avx512_vnni"})
    assert targets.host_compute() == ("f32",)
    monkeypatch.setattr(targets, "cpu_features", lambda: {"avx2", "avx512_vnni", "amx_bf16"})
    assert targets.host_compute() == ("f32", "bf16")


@pytest.mark.parametrize("host_has_bf16", [True, False])
def test_a_point_this_cpu_cannot_compute_is_named_as_not_measured_here(tmp_path, monkeypatch, host_has_bf16):
    from types import SimpleNamespace

    from edgeseg import targets
    from edgeseg.build.stages import bench_points

    recipe = recipe_from_dict(with_targets({"format": "openvino", "compute": ["f32", "bf16"]}, target="x86-bf16"))
    (tmp_path / "model.json").write_text(json.dumps({"verification": {"method": "parity"}}))
    ctx = SimpleNamespace(recipe=recipe, exports=[SimpleNamespace(name="export-openvino-fp32", root=tmp_path)])
    monkeypatch.setattr(targets, "host_compute", lambda: ("f32", "bf16") if host_has_bf16 else ("f32",))
    points, not_run = bench_points(ctx)
    names = [p.name for p in points]
    assert names == (["openvino-fp32", "openvino-fp32@bf16"] if host_has_bf16 else ["openvino-fp32"])
    assert points[-1].extra["point"]["target"] == "x86-bf16"
    if not host_has_bf16:
        assert not_run == [
            {
                "name": "openvino-fp32@bf16",
                "reason": "this CPU does not compute bf16 natively (no amx_bf16 or avx512_bf16): "
                "measure it on a x86-bf16 host",
            }
        ]


def test_the_bench_schema_names_the_tables_points():
    from edgeseg.formats import RUNTIME_NAMES
    from edgeseg.targets import TARGET_NAMES

    schema = json.loads((REPO / "edgeseg" / "schemas" / "bench.schema.json").read_text())
    point = schema["$defs"]["result"]["properties"]["point"]["properties"]
    assert point["runtime"]["enum"] == list(RUNTIME_NAMES)
    assert point["compute"]["enum"] == list(COMPUTE_PRECISIONS)
    assert point["target"]["enum"] == list(TARGET_NAMES)


def bench_result(name, runtime, compute, miou, p50, artifact="openvino-fp32"):
    return {
        "name": name,
        "point": {"artifact": artifact, "runtime": runtime, "compute": compute, "target": "x86-bf16"},
        "artifact": {"path": f"/x/{artifact}", "format": "openvino", "precision": "fp32", "size_mb": 1.0},
        "session": {"runtime": runtime, "precision": compute},
        "latency": [{"batch": 1, "p50_ms": p50, "p50_cv": 0.01}],
        "memory": {"peak_mb": 10.0},
        "accuracy": {"miou": miou},
        "model": {"gmacs": 0.1},
    }


def test_select_chooses_a_point_and_says_which_runtime_and_precision_to_run():
    from edgeseg.recipe import SelectSpec
    from edgeseg.select.decide import candidates_from_bench, decide, summary_line

    results = [
        bench_result("openvino-fp32", "openvino", "f32", 60.0, 3.0),
        bench_result("openvino-fp32@bf16", "openvino", "bf16", 59.9, 1.8),
    ]
    decision = decide(candidates_from_bench(results), SelectSpec(objective="latency", min_miou=59.5))
    chosen = decision["chosen"]
    assert (chosen["name"], chosen["artifact"], chosen["runtime"], chosen["compute"]) == (
        "openvino-fp32@bf16",
        "openvino-fp32",
        "openvino",
        "bf16",
    )
    assert "openvino computing in bf16" in summary_line(decision)


@pytest.fixture
def openvino_bundle(checkpoint, tmp_path):
    from edgeseg.exporters import export_checkpoint

    recipe = recipe_from_dict(tiny_recipe_dict())
    export_checkpoint(checkpoint, recipe, ExportTarget(format="openvino"), tmp_path / "bundle")
    return tmp_path / "bundle"


def load_kit():
    spec = importlib.util.spec_from_file_location("segment_kit", KIT)
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


def test_deploy_records_the_chosen_point_and_the_kit_and_bench_run_it_that_way(openvino_bundle, tmp_path):
    from edgeseg.cli.bench import _how_to_run
    from edgeseg.select.decide import copy_bundle

    compute = "bf16" if HOST_HAS_BF16 else "f32"
    chosen = {"name": "openvino-fp32@x", "runtime": "openvino", "compute": compute, "target": "x86-bf16"}
    chosen |= {"miou": 50.0, "latency_ms": 1.0, "peak_mb": 5.0}
    copy_bundle(openvino_bundle, tmp_path / "deploy", chosen, "local")
    deployment = json.loads((tmp_path / "deploy" / "model.json").read_text())["deployment"]
    assert deployment["runtime"] == "openvino" and deployment["compute"] == compute
    assert deployment["target"] == "x86-bf16" and deployment["measured_on"] == "local"

    kit = load_kit()
    segmenter = kit.Segmenter(tmp_path / "deploy")  # the proof check runs at the deployed precision
    assert (segmenter.runtime, segmenter.compute) == ("openvino", compute)
    assert kit.Segmenter(tmp_path / "deploy", compute="f32").compute == "f32"  # asked beats deployed
    assert kit.Segmenter(openvino_bundle).compute == "f32"  # an export bundle: f32, never the plugin's pick
    with pytest.raises(SystemExit, match="onnxruntime computes in the precision the file holds"):
        kit._open(tmp_path / "deploy" / "model.xml", "onnxruntime", None, "bf16")

    assert _how_to_run(tmp_path / "deploy", None, None) == [("openvino", compute)]
    assert _how_to_run(tmp_path / "deploy", ["openvino"], "f32") == [("openvino", "f32")]
    assert _how_to_run(openvino_bundle, None, None) == [(None, None)]


# oneDNN's ISA cap: OpenVINO's CPU plugin then has no f16 (AVX512-FP16, AMX-FP16) whatever the
# host, so the test below asserts the same thing on a Zen 4, an AMX Xeon and an AVX2-only EPYC
NO_F16_ISA = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}


def test_the_kit_says_when_the_cpu_cannot_compute_the_deployed_precision(openvino_bundle, tmp_path):
    """An app must still run where the CPU lacks the deployed precision, and say what it runs:
    OpenVINO compiles an f16 hint as bf16 on a Zen 4 and as f32 without AVX512_BF16."""
    import os
    import subprocess
    import sys

    from edgeseg.select.decide import copy_bundle

    chosen = {"name": "p", "runtime": "openvino", "compute": "f16", "target": "x86-bf16"}
    chosen |= {"miou": 1.0, "latency_ms": 1.0, "peak_mb": 1.0}
    copy_bundle(openvino_bundle, tmp_path / "deploy", chosen, "local")
    env = {**os.environ, **NO_F16_ISA, "PYTHONPATH": str(REPO)}
    kit = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('kit', sys.argv[1])\n"
        "kit = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(kit); print(kit.Segmenter(sys.argv[2]).compute)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", kit, str(KIT), str(tmp_path / "deploy")], capture_output=True, text=True, env=env
    )
    computes = ran.stdout.strip()
    assert ran.returncode == 0 and computes in ("bf16", "f32"), ran.stderr[-2000:]
    assert f"openvino computes in {computes} here, not f16" in ran.stderr
    # edgeseg bench, which measures, refuses instead: a figure at another precision is not this one's
    bench = [sys.executable, "-m", "edgeseg", "bench", str(tmp_path / "deploy"), "--iterations", "2", "--rounds", "1"]
    refused = subprocess.run(bench, capture_output=True, text=True, env=env)
    assert refused.returncode == 7, refused.stderr[-2000:]
    assert "openvino: CPU cannot run f16 here" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_build_measures_every_point_and_deploys_the_chosen_one(tmp_path):
    """onnx-int8 through ONNX Runtime and OpenVINO, an OpenVINO IR at f32 and bf16 for an x86-bf16
    target: each point benched, scored and on the report; select picks one; deploy/ says how to run it."""
    from PIL import Image

    from edgeseg.build.pipeline import build

    from conftest import run_kit_without_torch

    recipe_dict = with_targets(
        {"format": "onnx", "precision": "int8", "runtimes": ["onnxruntime", "openvino"]},
        {"format": "openvino", "target": "x86-bf16", "compute": ["f32", "bf16"]},
    ) | {"train": {"epochs": 1, "batch_size": 4, "lr": 0.01}, "select": {"objective": "latency"}}
    build(recipe_from_dict(recipe_dict), tmp_path)
    run = tmp_path / "tiny"
    bench = json.loads((run / "bench" / "bench.json").read_text())
    measured = {r["name"]: r for r in bench["results"] if r.get("role") != "reference"}
    bf16 = "openvino-fp32-x86-bf16@bf16"
    expected = ["onnx-int8", "onnx-int8@openvino", "openvino-fp32-x86-bf16"] + ([bf16] if HOST_HAS_BF16 else [])
    assert sorted(measured) == sorted(expected)
    assert measured["onnx-int8@openvino"]["session"]["runtime"] == "openvino"
    assert measured["onnx-int8@openvino"]["point"] == {
        "artifact": "onnx-int8",
        "runtime": "openvino",
        "compute": "f32",
        "target": "any",
    }
    assert all(r["accuracy"]["miou"] is not None for r in measured.values())  # scored at the point's precision
    if HOST_HAS_BF16:
        assert measured[bf16]["session"]["precision"] == "bf16"
    else:
        assert [n["name"] for n in bench["not_run"]] == [bf16] and "avx512_bf16" in bench["not_run"][0]["reason"]

    decision = json.loads((run / "decision.json").read_text())
    chosen = decision["chosen"]
    assert chosen["name"] in measured and decision["candidates"] == len(measured)
    deployment = json.loads((run / "deploy" / "model.json").read_text())["deployment"]
    assert (deployment["runtime"], deployment["compute"]) == (chosen["runtime"], chosen["compute"])
    assert deployment["point"] == chosen["name"]
    report = (run / "report.md").read_text()
    assert all(f"| {name}" in report for name in measured) and "onnx-int8@openvino" in report
    # the CLI ends with what to ship and how to run it (a second build: every stage cached)
    from typer.testing import CliRunner

    from edgeseg.cli import app

    (tmp_path / "tiny.yaml").write_text(json.dumps(recipe_dict))
    said = CliRunner().invoke(app, ["build", str(tmp_path / "tiny.yaml"), "--runs", str(tmp_path)]).output
    assert f"Deploy {chosen['name']} (" in said and f"{chosen['runtime']} computing in {chosen['compute']}" in said

    image = tmp_path / "street.png"
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(image)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    run_kit_without_torch(run / "deploy", [image], tmp_path / "out")  # the deployed way, without torch
    assert (tmp_path / "out" / "street_classes.png").is_file()


def test_a_points_figures_are_valid_mlflow_metric_keys():
    from mlflow.utils.validation import _validate_metric_name

    from edgeseg.build.tracking import _bench_metrics

    result = bench_result("onnx-int8@openvino-bf16", "openvino", "bf16", 60.0, 1.0)
    result["memory"]["peak_mb"] = 10.0
    figures = _bench_metrics(result)
    assert "bench.onnx-int8/openvino-bf16.p50_ms" in figures
    for key in figures:
        _validate_metric_name(key)


def test_the_export_key_follows_the_target_an_artifact_is_built_for():
    """export.target decides int8 weights (7-bit for any, 8-bit for x86-bf16): changing it must
    re-export the artifacts that take it, never reuse a bundle built for another target."""
    from types import SimpleNamespace

    from edgeseg.build.stages import _export_spec

    def key(default: str, **artifact) -> dict:
        recipe = recipe_from_dict(with_targets({"format": "onnx", "precision": "int8", **artifact}, target=default))
        return _export_spec(SimpleNamespace(recipe=recipe), recipe.export.targets[0])

    assert key("any")["artifact"]["target"] == "any" and key("x86-bf16")["artifact"]["target"] == "x86-bf16"
    assert key("any") != key("x86-vnni")
    assert key("any", target="arm64")["artifact"] == key("x86-vnni", target="arm64")["artifact"]  # its own wins
    points = {"runtimes": ["onnxruntime", "openvino"], "compute": ["f32", "bf16"]}
    assert key("x86-bf16") == key("x86-bf16", **points)  # another point re-benches, it does not re-export
