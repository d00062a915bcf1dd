"""The benchmark harness and the report: the harness reports what it measured, the JSON follows
its schema, accuracy goes through the artifact's runtime, torch is never needed, and the report
page loads in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from edgeseg.errors import EdgesegError

from conftest import REPO, THREADS, tiny_recipe_dict

SCHEMAS = REPO / "edgeseg" / "schemas"


def validate(document: dict, schema: str) -> None:
    import jsonschema

    jsonschema.validate(document, json.loads((SCHEMAS / schema).read_text()))


# --------------------------------------------------------------------------------------------
# The harness itself, on callables with a known duration


def test_p50_of_a_known_sleep_is_that_sleep():
    from edgeseg.bench.timing import time_calls

    result = time_calls(lambda: time.sleep(0.02), warmup=3, warmup_s=0, iterations=20, rounds=4)
    assert result["warmup"]["calls"] == 3 and result["iterations"] == 20 and len(result["round_p50_ms"]) == 4
    assert 20.0 <= result["p50_ms"] <= 24.0, result
    assert result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["throughput_ips"] == pytest.approx(1000 / result["mean_ms"], rel=1e-3)
    assert result["p50_cv"] < 0.05


def test_the_device_sync_is_inside_the_timed_region():
    from edgeseg.bench.timing import time_calls

    result = time_calls(
        lambda: None, sync=lambda: time.sleep(0.01), batch=4, warmup=1, warmup_s=0, iterations=5, rounds=1
    )
    assert result["p50_ms"] >= 10.0 and result["throughput_ips"] == pytest.approx(4000 / result["mean_ms"], rel=1e-3)


def test_a_time_budget_bounds_the_timed_calls():
    from edgeseg.bench.timing import time_calls

    started = time.perf_counter()
    result = time_calls(lambda: time.sleep(0.01), warmup=0, warmup_s=0.05, budget_s=0.3, rounds=3)
    assert 0.3 <= time.perf_counter() - started < 0.6
    assert 15 <= result["iterations"] <= 30 and result["warmup"]["calls"] >= 4


def test_peak_memory_sees_an_allocation_it_did_not_keep():
    from edgeseg.bench import memory

    if not memory.reset_peak():
        pytest.skip("/proc/self/clear_refs is not writable here")
    before = memory.rss_mb()
    block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MiB, touched
    del block
    assert memory.peak_rss_mb() - before >= 190
    assert memory.rss_mb() - before < 50


# --------------------------------------------------------------------------------------------
# edgeseg bench on real bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A tiny model's checkpoint, its recipe file and two bundles (onnx fp32, openvino fp16)."""
    import torch
    import yaml

    from edgeseg.exporters import export_checkpoint
    from edgeseg.recipe import ExportTarget, recipe_from_dict
    from edgeseg.train.loop import fit

    root = tmp_path_factory.mktemp("bench")
    raw = tiny_recipe_dict(train={"epochs": 2}, export={"dynamic_batch": True})
    recipe = recipe_from_dict(raw)
    torch.set_num_threads(THREADS)  # a module fixture runs before the autouse one
    fit(recipe, root / "train", show_progress=False)
    out = {"checkpoint": root / "train" / "best.pt", "recipe": root / "tiny.yaml", "root": root}
    out["recipe"].write_text(yaml.safe_dump(raw))
    for fmt, precision in (("onnx", "fp32"), ("openvino", "fp16")):
        out[fmt] = root / f"{fmt}-{precision}"
        export_checkpoint(out["checkpoint"], recipe, ExportTarget(format=fmt, precision=precision), out[fmt])
    return out


def run_cli(*args, env=None, python=sys.executable, cwd=REPO):
    done = subprocess.run(
        [python, "-m", "edgeseg", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_bench_cli_measures_latency_memory_and_accuracy(bundles, tmp_path):
    out = tmp_path / "bench.json"
    run_cli(
        "bench",
        bundles["onnx"],
        bundles["openvino"],
        "--recipe",
        bundles["recipe"],
        "--reference",
        bundles["checkpoint"],
        "--threads",
        "2",
        "--batch",
        "1",
        "--batch",
        "2",
        "--iterations",
        "20",
        "--rounds",
        "2",
        "--json",
        out,
    )
    document = json.loads(out.read_text())
    validate(document, "bench.schema.json")
    reference, onnx_fp32, openvino_fp16 = document["results"]
    assert reference["role"] == "reference" and reference["session"]["runtime"] == "torch"
    assert onnx_fp32["session"]["runtime"] == "onnxruntime" and openvino_fp16["session"]["runtime"] == "openvino"
    assert [row["batch"] for row in onnx_fp32["latency"]] == [1, 2] and all(
        "p50_ms" in row for row in onnx_fp32["latency"]
    )
    assert onnx_fp32["latency"][0]["warmup"]["calls"] >= 10 and onnx_fp32["latency"][0]["iterations"] == 20
    assert onnx_fp32["model"]["gmacs"] > 0 and onnx_fp32["model"]["params_m"] > 0
    assert (
        onnx_fp32["memory"]["session_mb"] > 0
        and onnx_fp32["memory"]["peak_mb"] >= onnx_fp32["memory"]["session_mb"] - 1
    )
    # the fp32 ONNX graph is the PyTorch model: same mIoU on the 8 val images, every pixel agrees
    assert onnx_fp32["accuracy"]["images"] == 8 and onnx_fp32["accuracy"]["miou"] == pytest.approx(
        reference["accuracy"]["miou"], abs=0.05
    )
    assert onnx_fp32["accuracy"]["agreement_with_reference"] > 0.999
    assert openvino_fp16["accuracy"]["agreement_with_reference"] > 0.99
    assert set(onnx_fp32["environment"]["versions"]) >= {"edgeseg", "onnxruntime", "openvino"}


def test_a_static_batch_artifact_says_why_batch_4_was_not_measured(bundles, tmp_path):
    from edgeseg.bench import BenchSpec
    from edgeseg.bench.measure import measure
    from edgeseg.exporters import export_checkpoint
    from edgeseg.recipe import ExportTarget, recipe_from_dict

    static = tmp_path / "static"
    export_checkpoint(bundles["checkpoint"], recipe_from_dict(tiny_recipe_dict()), ExportTarget(format="onnx"), static)
    result = measure(BenchSpec(artifact=str(static), batches=(1, 4), iterations=4, rounds=1, warmup=1, warmup_s=0))
    assert "p50_ms" in result["latency"][0] and result["accuracy"] is None
    assert result["latency"][1] == {
        "batch": 4,
        "skipped": "the artifact's batch is fixed at 1 (export with export.dynamic_batch: true)",
    }


def test_a_broken_artifact_fails_with_its_path(tmp_path):
    from edgeseg.bench import BenchSpec, run_isolated
    from edgeseg.errors import EdgesegError

    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "model.json").write_text(
        json.dumps(
            {"artifact": {"file": "model.onnx", "format": "onnx", "precision": "fp32"}, "input": {"size": [8, 8]}}
        )
    )
    with pytest.raises(EdgesegError, match=f"{tmp_path}: benchmark failed: "):
        run_isolated(BenchSpec(artifact=str(tmp_path), iterations=2, rounds=1))


@pytest.mark.slow
def test_bench_runs_in_a_venv_without_torch(bundles, bench_venv, tmp_path):
    """What a Jetson or a laptop gets from `pip install "edgeseg[bench]"`: no torch, accuracy included."""
    python = bench_venv / "bin" / "python"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'torchvision', 'nncf') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"
    out = tmp_path / "bench.json"
    run_cli(
        "bench",
        bundles["onnx"],
        bundles["openvino"],
        "--recipe",
        bundles["recipe"],
        "--reference",
        bundles["onnx"],
        "--iterations",
        "10",
        "--rounds",
        "2",
        "--json",
        out,
        python=python,
        cwd=tmp_path,
    )
    document = json.loads(out.read_text())
    assert [r["session"]["runtime"] for r in document["results"]] == ["onnxruntime", "onnxruntime", "openvino"]
    assert all(r["accuracy"]["miou"] is not None for r in document["results"])
    assert "torch" not in document["environment"]["versions"]
    refused = subprocess.run(
        [str(python), "-m", "edgeseg", "export", str(bundles["checkpoint"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert refused.returncode == 7 and 'pip install "edgeseg[train]"' in refused.stderr


# --------------------------------------------------------------------------------------------
# The report


def fake_result(name: str, miou: float, p50: float, role: str = "artifact") -> dict:
    from edgeseg.bench.environment import environment

    classes = {"road": miou + 5, "sky": miou - 5}
    return {
        "schema": "edgeseg.bench/1",
        "name": name,
        "role": role,
        "artifact": {
            "path": f"runs/x/{name}",
            "file": "model.onnx",
            "format": "onnx",
            "precision": "fp32",
            "size_mb": 1.0,
        },
        "model": {"input_size": [64, 80], "gmacs": 0.1, "params_m": 1.0},
        "session": {
            "runtime": "onnxruntime",
            "device": "cpu",
            "threads": 2,
            "precision": "as stored",
            "details": {},
            "create_s": 0.1,
        },
        "latency": [
            {
                "batch": 1,
                "warmup": {"calls": 10, "seconds": 1.0},
                "iterations": 100,
                "rounds": 5,
                "p50_ms": p50,
                "p90_ms": p50 * 1.1,
                "p99_ms": p50 * 1.2,
                "mean_ms": p50,
                "std_ms": 0.1,
                "min_ms": p50 * 0.9,
                "max_ms": p50 * 1.3,
                "throughput_ips": 1000 / p50,
                "round_p50_ms": [p50] * 5,
                "p50_cv": 0.01,
            }
        ],
        "memory": {
            "rss_before_mb": 50.0,
            "session_mb": 10.0,
            "peak_mb": 12.0,
            "peak_measured": "VmHWM reset before inference",
            "gpu_mb": None,
        },
        "accuracy": {
            "split": "val",
            "images": 8,
            "miou": miou,
            "pixel_accuracy": 90.0,
            "per_class_iou": classes,
            "agreement_with_reference": 1.0,
        },
        "settings": {"threads": 2, "warmup": 10, "warmup_s": 1.0, "iterations": 100, "budget_s": None, "rounds": 5},
        "environment": environment(),
    }


def test_pareto_front_keeps_only_undominated_artifacts():
    from edgeseg.report import artifact_rows, pareto_front

    rows = artifact_rows(
        [
            fake_result("fp32", 70, 10, "reference"),
            fake_result("int8", 69, 4),
            fake_result("fp16", 69.5, 12),
            fake_result("tiny", 60, 3),
        ]
    )
    assert pareto_front(rows) == {"fp32", "int8", "tiny"}


@pytest.mark.slow
def test_build_report_opens_in_headless_chromium(tmp_path):
    """The quickstart-shaped build ends with a report whose every section is filled and renders."""
    from edgeseg.build.pipeline import build
    from edgeseg.recipe import recipe_from_dict

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium package)")
    targets = [
        {"format": "onnx", "precision": "fp32"},
        {"format": "onnx", "precision": "int8"},
        {"format": "openvino", "precision": "fp16"},
    ]
    recipe = recipe_from_dict(
        tiny_recipe_dict(train={"epochs": 2}, export={"targets": targets}, bench={"iterations": 20, "rounds": 2})
    )
    stages = build(recipe, tmp_path)
    assert [s.name for s in stages][-2:] == ["bench", "report"]
    run = tmp_path / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    validate(metrics, "metrics.schema.json")
    assert [a["name"] for a in metrics["artifacts"]] == ["pytorch-fp32", "onnx-fp32", "onnx-int8", "openvino-fp16"]
    assert all(
        a["miou"] is not None and a["latency_ms"]["p50"] > 0 and a["peak_mem_mb"] is not None
        for a in metrics["artifacts"]
    )
    assert metrics["pareto_front"]
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "not available in this run" not in page
    assert "| onnx-int8" in (run / "report.md").read_text()

    # Load the page in Chromium with a probe that records whether every image decoded.
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.replace(
            "</body>",
            "<script>window.addEventListener('load', () => { const bad = [...document.images]"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).length; "
            "document.title = 'IMAGES-OK:' + (bad === 0) + ':' + document.images.length + ':ROWS:' "
            "+ document.querySelectorAll('#artifacts tbody tr').length; });</script></body>",
        )
    )
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>IMAGES-OK:true:3:ROWS:4</title>" in dom.stdout, (dom.stdout[:500], dom.stderr[-2000:])
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1400,3200", f"--screenshot={shot}", (run / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    rows_with_content = (pixels.std(axis=(1, 2)) > 10).mean()
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()  # plots and sample masks, not just black text
    assert rows_with_content > 0.3 and colourful > 0.02, (rows_with_content, colourful)


def test_gates_reject_with_metric_value_and_limit():
    from edgeseg.recipe import GatesSpec
    from edgeseg.select.gates import check_gates

    results = [
        fake_result("pytorch-fp32", 70, 10, "reference"),
        fake_result("onnx-int8", 67.5, 4),
        fake_result("onnx-fp32", 70, 9),
    ]
    results[1]["accuracy"]["agreement_with_reference"] = 0.95
    gates = GatesSpec(max_miou_drop=2.0, min_miou=60, max_latency_ms=8.0, min_pixel_agreement=0.97)
    assert check_gates(gates, results) == {
        "onnx-int8": [
            "mIoU drop vs fp32 2.5 is above the maximum 2.0 (gates.max_miou_drop)",
            "pixel agreement with fp32 0.95 is below the minimum 0.97 (gates.min_pixel_agreement)",
        ],
        "onnx-fp32": ["p50 latency (ms, batch 1) 9 is above the maximum 8.0 (gates.max_latency_ms)"],
    }
    assert check_gates(GatesSpec(), results) == {}


def test_gates_that_nothing_measures_are_a_recipe_error():
    from edgeseg.errors import RecipeError
    from edgeseg.recipe import recipe_from_dict

    with pytest.raises(RecipeError, match="r.yaml: .*gates on mIoU or agreement need bench.accuracy: true"):
        recipe_from_dict(tiny_recipe_dict(gates={"min_miou": 50}, bench={"accuracy": False}), "r.yaml")
    with pytest.raises(RecipeError, match="gates.max_latency_ms is checked at batch 1"):
        recipe_from_dict(tiny_recipe_dict(gates={"max_latency_ms": 5}, bench={"batches": [4]}), "r.yaml")


@pytest.mark.slow
def test_a_failed_gate_fails_the_build_with_exit_3_and_keeps_the_artifact_marked(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1}, gates={"max_latency_ms": 0.001})))
    done = subprocess.run(
        [sys.executable, "-m", "edgeseg", "build", str(recipe), "--runs", str(tmp_path / "runs"), "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 3, done.stderr
    assert (
        "onnx-fp32: p50 latency (ms, batch 1)" in done.stderr
        and "above the maximum 0.001 (gates.max_latency_ms)" in done.stderr
    )
    run = tmp_path / "runs" / "tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    export = next(s for s in manifest["stages"] if s["name"] == "export-onnx-fp32")
    assert export["deployable"] is False and "gates.max_latency_ms" in export["rejected"][0]
    assert manifest["gates"]["passed"] is False and (run / "export-onnx-fp32" / "model.onnx").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["artifacts"][1]["rejected"] and "onnx-fp32" not in metrics["pareto_front"]
    assert "onnx-fp32 (rejected)" in (run / "report.md").read_text()


@pytest.mark.slow
def test_every_runtime_that_reads_a_format_runs_its_bundles_and_says_which_cannot(bundles, tmp_path):
    """The runtime x format matrix installable here: every runtime the format table lists for a
    bundle opens it and agrees with the bundle's own runtime (TensorRT needs the GPU machine)."""
    import yaml

    from edgeseg.exporters import export_checkpoint
    from edgeseg.formats import FORMATS
    from edgeseg.recipe import ExportTarget, recipe_from_dict
    from edgeseg.runtimes.session import open_session

    recipe = recipe_from_dict(yaml.safe_load(bundles["recipe"].read_text()))
    made = {("onnx", "fp32"): bundles["onnx"], ("openvino", "fp16"): bundles["openvino"]}
    for fmt, precision in (("onnx", "int8"), ("ort", "fp32")):
        made[(fmt, precision)] = tmp_path / f"{fmt}-{precision}"
        export_checkpoint(
            bundles["checkpoint"], recipe, ExportTarget(format=fmt, precision=precision), made[fmt, precision]
        )
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 80)).astype(np.float32)
    pairs = 0
    for (fmt, precision), bundle in made.items():
        own = open_session(bundle, threads=1).run(x)
        for runtime in FORMATS[fmt].runtimes:
            if runtime == "tensorrt":
                continue
            other = open_session(bundle, runtime, threads=1).run(x)
            agreement = float((other.argmax(1) == own.argmax(1)).mean())
            assert agreement >= (0.9 if precision == "int8" else 0.99), (fmt, precision, runtime, agreement)
            pairs += 1
    assert pairs == 6  # onnx fp32 and int8 on ORT and OpenVINO, ort on ORT, the IR on OpenVINO
    with pytest.raises(EdgesegError, match=r"runtime 'openvino' cannot open .ort files \(use onnxruntime\)"):
        open_session(made["ort", "fp32"], "openvino")


@pytest.mark.slow
def test_bench_precision_is_asked_for_recorded_and_refused_where_it_cannot_run(bundles, tmp_path):
    import openvino as ov
    from typer.testing import CliRunner

    from edgeseg.cli import app

    quick = ["--iterations", "2", "--rounds", "1", "--warmup", "1", "--threads", "1"]
    runner = CliRunner()
    refused = runner.invoke(app, ["bench", str(bundles["onnx"]), "--precision", "bf16", *quick])
    assert refused.exit_code == 7 and "onnxruntime runs an artifact at the precision its file holds" in refused.output
    assert "bf16 execution: openvino" in refused.output
    unknown = runner.invoke(app, ["bench", str(bundles["onnx"]), "--precision", "bf17", *quick])
    assert unknown.exit_code == 2 and "did you mean 'bf16'" in unknown.output
    out = tmp_path / "bench.json"
    args = ["bench", str(bundles["openvino"]), "--precision", "bf16", *quick, "--json", str(out)]
    result = runner.invoke(app, args)
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):  # AVX512_BF16 or AMX
        assert result.exit_code == 0, result.output
        (measured,) = json.loads(out.read_text())["results"]
        assert measured["session"]["precision"] == "bf16" and measured["name"].endswith("[bf16]")
    else:  # never a silent fallback to f32
        assert result.exit_code == 7 and "CPU cannot run bf16 here (it runs: f32" in result.output
        assert not out.exists()
    # f16: OpenVINO lists FP16 on AVX512-FP16/AMX-FP16 Xeons (and ARM); measurable, never offered on x86
    f16 = runner.invoke(app, ["bench", str(bundles["openvino"]), "--precision", "f16", *quick, "--json", str(out)])
    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert f16.exit_code == 0, f16.output
        assert json.loads(out.read_text())["results"][0]["session"]["precision"] == "f16"
    else:
        assert f16.exit_code == 7 and "CPU cannot run f16 here" in f16.output
    on_onnx = runner.invoke(app, ["bench", str(bundles["onnx"]), "-r", "openvino", *quick])
    assert on_onnx.exit_code == 0, on_onnx.output  # OpenVINO reads the ONNX file itself


def test_the_compute_floor_is_the_models_macs_at_the_hosts_gemm_peak():
    from edgeseg.bench.floor import floor_section, peak_gmacs

    peaks = {"fp32": 200.0, "int8": 800.0, "gemm": "test"}
    int8 = floor_section(2.4, "int8", peaks, 6.0)
    assert int8["peak"] == "int8" and int8["compute_floor_ms"] == 3.0 and int8["p50_over_floor"] == 2.0
    assert floor_section(2.4, "fp16", peaks, 24.0)["compute_floor_ms"] == 12.0  # float precisions: fp32's peak
    assert floor_section(None, "int8", peaks, 6.0) is None and floor_section(2.4, "int8", None, 6.0) is None
    # a real GEMM: int8 (u8 x s8, VNNI or AVX2 kernels) sustains more MACs than fp32 on any x86 here
    assert peak_gmacs(1, "int8", size=256, seconds=0.2) > peak_gmacs(1, "fp32", size=256, seconds=0.2) > 1


def test_what_openvino_computes_in_bf16_is_held_to_a_bf16_gemm():
    import openvino as ov

    from edgeseg.bench.floor import bf16_peak_gmacs, floor_section, host_peaks

    peaks = {"fp32": 200.0, "int8": 800.0, "bf16": 400.0, "gemm": "test"}
    bf16 = floor_section(2.4, "fp16", peaks, 12.0, computes="bf16")
    assert bf16["peak"] == "bf16" and bf16["compute_floor_ms"] == 6.0 and bf16["p50_over_floor"] == 2.0
    assert floor_section(2.4, "fp16", peaks, 12.0, computes="f32")["peak"] == "fp32"
    assert "bf16" not in host_peaks(1)  # measured only when some artifact computes bf16
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):  # AVX512_BF16 or AMX
        assert bf16_peak_gmacs(1, size=256, seconds=0.2) > 1
    else:  # no bf16 here: no figure, rather than f32's under bf16's name
        assert bf16_peak_gmacs(1, size=256, seconds=0.2) is None


def test_an_openvino_session_binds_bench_s_reused_buffer_once_and_still_sees_every_change(tmp_path):
    """``infer`` binds an input array's memory once (bench calls it on one array thousands of
    times): a buffer changed in place, another array, a strided view or float64 must still give
    that input's output, never a stale one."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgeseg.runtimes.openvino_rt import OpenVINOSession

    image = ops.parameter([1, 3, 4, 4], ov.Type.f32, name="image")
    doubled = ops.multiply(image, ops.constant(np.float32(2.0)))
    ov.save_model(ov.Model([doubled], [image], "double"), tmp_path / "model.xml")
    session = OpenVINOSession(tmp_path / "model.xml", threads=1)
    rng = np.random.default_rng(0)
    frame = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(session.run(frame), 2 * frame)
    frame[:] = rng.standard_normal(frame.shape)  # the camera writes the next frame into the same buffer
    np.testing.assert_array_equal(session.run(frame), 2 * frame)
    other = rng.standard_normal(frame.shape).astype(np.float32)
    np.testing.assert_array_equal(session.run(other), 2 * other)
    strided = rng.standard_normal((1, 3, 4, 8)).astype(np.float32)[..., ::2]  # not bindable in place
    np.testing.assert_array_equal(session.run(strided), 2 * strided)
    np.testing.assert_allclose(session.run(other.astype(np.float64)), 2 * other, rtol=1e-6)
    np.testing.assert_array_equal(session.run(frame), 2 * frame)  # back to a buffer bound before
