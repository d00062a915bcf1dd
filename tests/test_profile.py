"""Per-op profiles (issue 34, part 1): ONNX Runtime's trace and OpenVINO's per-layer counters
read into ms per call by op type and the slowest nodes, through ``bench --profile`` /
``bench.profile`` into bench.json, metrics.json and the report."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.bench.profile import PROFILED_CALLS, TOP_NODES, _onnxruntime_ops, op_profile
from edgeseg.cli import app
from edgeseg.recipe import ExportTarget, recipe_from_dict

from conftest import REPO, tiny_recipe_dict


@pytest.fixture(scope="module")
def bundles(checkpoint, tmp_path_factory):
    from edgeseg.exporters import export_checkpoint

    root = tmp_path_factory.mktemp("profile")
    made = {}
    for fmt in ("onnx", "openvino"):
        made[fmt] = root / fmt
        export_checkpoint(checkpoint, recipe_from_dict(tiny_recipe_dict()), ExportTarget(format=fmt), made[fmt])
    return made


def tiny_graph(path) -> None:
    """Conv -> Relu -> Conv -> Resize x2: op types and node counts known in advance."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in
               (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 1, 1)))]  # fmt: skip
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["c"]),
        helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="linear"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 64, 64])],
        initializer=[*weights, scales],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_warm_up_calls_are_left_out_of_the_ort_trace(tmp_path):
    tiny_graph(tmp_path / "tiny.onnx")
    batch = np.zeros((1, 3, 32, 32), np.float32)
    nodes, call_ms = _onnxruntime_ops(tmp_path / "tiny.onnx", 1, batch, calls=7)
    per_node = Counter(node["name"] for node in nodes)
    assert per_node and set(per_node.values()) == {7}  # every node once per timed call, none from warm-up
    assert call_ms > 0


def test_the_summary_adds_up_and_ranks_the_slowest_first(tmp_path):
    tiny_graph(tmp_path / "tiny.onnx")
    profile = op_profile(tmp_path / "tiny.onnx", "onnxruntime", 1, np.zeros((1, 3, 32, 32), np.float32), calls=5)
    assert profile["calls"] == 5 and profile["runtime"] == "onnxruntime"
    assert profile["ops_ms"] == pytest.approx(sum(row["ms"] for row in profile["by_type"]), abs=1e-3)
    assert sum(row["share"] for row in profile["by_type"]) == pytest.approx(1, abs=1e-3)
    assert profile["call_ms"] >= profile["ops_ms"] * 0.9  # the call holds its ops (rounding aside)
    ms = [row["ms"] for row in profile["top_nodes"]]
    assert ms == sorted(ms, reverse=True) and len(ms) <= TOP_NODES
    types = {row["op_type"] for row in profile["by_type"]}
    assert "Conv" in types and types & {"Resize", "Upsample"}  # ORT may run the resize as its NCHWc Upsample
    assert all(row["kernels"] == ["CPUExecutionProvider"] for row in profile["by_type"])


def test_openvino_counters_name_the_primitive_each_layer_ran(bundles):
    from edgeseg.bench.accuracy import describe, prepare
    from edgeseg.bundle import artifact_path

    meta = describe(bundles["openvino"])
    batch = prepare([np.zeros((*meta["input"]["size"], 3), np.uint8)], meta)
    profile = op_profile(artifact_path(bundles["openvino"]), "openvino", 1, batch, calls=3)
    assert profile["runtime"] == "openvino" and profile["ops_ms"] > 0
    convolution = next(row for row in profile["by_type"] if row["op_type"] == "Convolution")
    assert convolution["nodes"] >= 1 and all(k and k != "undef" for k in convolution["kernels"])


def test_a_runtime_without_a_profiler_here_says_so(tmp_path):
    profile = op_profile(tmp_path / "model.pt", "torch", 1, np.zeros(1))
    assert profile == {"skipped": "per-op profiles read onnxruntime and openvino' profilers; this is torch"}


def test_bench_profile_reaches_bench_json_metrics_and_the_report(bundles, tmp_path):
    import jsonschema

    from edgeseg.report.render import _profile_table, artifact_rows, write_report

    args = ["bench", str(bundles["onnx"]), str(bundles["openvino"]), "--profile"]
    args += ["--iterations", "4", "--rounds", "1", "--json", str(tmp_path / "b.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "b.json").read_text())
    jsonschema.validate(document, json.loads((REPO / "edgeseg" / "schemas" / "bench.schema.json").read_text()))
    profiles = [r["profile"] for r in document["results"]]
    assert [p["runtime"] for p in profiles] == ["onnxruntime", "openvino"]
    assert all(p["calls"] == PROFILED_CALLS for p in profiles)
    assert "profile (onnxruntime, 20 calls)" in result.output and "profile (openvino, 20 calls)" in result.output
    rows = artifact_rows(document["results"])
    heaviest = profiles[0]["by_type"][0]
    assert rows[0]["profile"]["top"][0] == {k: heaviest[k] for k in ("op_type", "ms", "share", "nodes")}
    head, body = _profile_table(rows)
    assert head[:4] == ["artifact", "runtime", "call ms", "ops ms"] and len(body) == 2
    assert body[0][4].startswith(profiles[0]["by_type"][0]["op_type"] + " ")
    write_report(document["results"], tmp_path / "report", title="tiny")
    assert "## Where the time goes" in (tmp_path / "report" / "report.md").read_text()
    assert "<table id='profile'>" in (tmp_path / "report" / "report.html").read_text()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    jsonschema.validate(metrics, json.loads((REPO / "edgeseg" / "schemas" / "metrics.schema.json").read_text()))
    assert metrics["artifacts"][1]["profile"]["runtime"] == "openvino"


def test_profile_runs_here_only_and_the_recipe_turns_it_on(bundles):
    result = CliRunner().invoke(app, ["bench", str(bundles["onnx"]), "--profile", "--remote", "device"])
    assert result.exit_code == 2 and "--profile run here only" in result.output
    assert recipe_from_dict(tiny_recipe_dict(bench={"profile": True})).bench.profile is True
