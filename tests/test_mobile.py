"""Mobile formats (ExecuTorch, LiteRT, Core ML) on a tiny trained model: each built, verified
through its own runtime (Core ML: package checks off macOS), described, run by the kit, and
refused cleanly when its extra is missing."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from edgeseg.errors import DependencyError, RecipeError
from edgeseg.exporters import export_checkpoint, prepare_job
from edgeseg.formats import FORMATS
from edgeseg.models.checkpoint import load_model
from edgeseg.recipe import ExportTarget, recipe_from_dict
from edgeseg.runtimes import open_session
from edgeseg.runtimes.emulate import QEMU

from conftest import REPO, run_kit_without_torch, tiny_recipe_dict

MOBILE = [f.name for f in FORMATS.values() if f.fixed_shape]
TARGETS = [(fmt, p) for fmt in MOBILE for p in FORMATS[fmt].precisions]


@pytest.fixture(scope="module")
def bundles(checkpoint, tmp_path_factory):
    """Build each (format, precision, export options) once per module."""
    built = {}

    def get(fmt, precision, **export):
        key = (fmt, precision, json.dumps(export, sort_keys=True))
        if key not in built:
            out = tmp_path_factory.mktemp(f"{fmt}-{precision}") / "bundle"
            recipe = recipe_from_dict(tiny_recipe_dict(export=export))
            target = ExportTarget(format=fmt, precision=precision)
            built[key] = (out, export_checkpoint(checkpoint, recipe, target, out))
        return built[key]

    return get


def normalised(checkpoint, n=1, seed=0) -> np.ndarray:
    loaded = load_model(checkpoint)
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 3, 64, 80)).astype(np.float32)
    mean = np.asarray(loaded.mean, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(loaded.std, np.float32).reshape(1, 3, 1, 1) * 255
    return (pixels - mean) / std


def torch_logits(checkpoint, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_model(checkpoint).model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt,precision", TARGETS, ids=[f"{f}-{p}" for f, p in TARGETS])
@pytest.mark.slow
def test_every_mobile_format_builds_verifies_and_describes_itself(bundles, fmt, precision):
    out, meta = bundles(fmt, precision)
    assert json.loads((out / "model.json").read_text()) == meta
    assert (out / meta["artifact"]["file"]).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no staging files in the bundle"
    v = meta["verification"]
    assert v["passed"] and meta["classes"]["names"][0] == "sky"
    if fmt == "coreml":  # no Apple runtime off macOS: the package is checked, and says so
        assert v["on_device"] is False and "not run" in v["method"] and v["status"].startswith("unverified")
        assert set(v["checks"]) == {"input", "output", "metadata", "weights", "mil_program"}
        assert meta["input"]["kind"] == "image" and meta["input"]["preprocessing"]["in_graph"]
        graph = v["graph_evaluation"]  # the saved MIL program run op by op in PyTorch
        assert graph["ran"] and graph["images"] == 8 and graph["agreement"] >= graph["limit"]
        if precision == "fp16":
            assert graph["max_abs_logit"] < 5e-3  # fp16 weights and activations, not bit-exact
    else:
        assert v["runtime"] == FORMATS[fmt].runtimes[0] and v["images"] == 8
        assert v["agreement"] >= 0.97 and v["agreement_vs_fp32"] >= 0.97
    if precision == "fp32":
        assert v["max_abs_logit"] <= 1e-3 and v["agreement"] >= 0.999 and v["reference"] == "fp32"
    if precision == "int8":
        fp32_size = bundles(fmt, FORMATS[fmt].precisions[0])[1]["artifact"]["size_bytes"]
        assert meta["artifact"]["size_bytes"] < 0.6 * fp32_size, "8-bit weights"
        if FORMATS[fmt].quantizer == "pt2e":
            assert v["reference"].startswith("pt2e quantized") and meta["artifact"]["calibration_images"] == 16
    if fmt == "litert":
        assert meta["input"]["layout"] == "NHWC" and meta["input"]["shape"] == [1, 64, 80, 3]


@pytest.mark.parametrize("fmt", ["executorch", "litert"])
@pytest.mark.slow
def test_fp32_artifacts_match_torch_through_the_public_runtime_api(bundles, checkpoint, fmt):
    out, _ = bundles(fmt, "fp32")
    session = open_session(out, threads=2)
    x = normalised(checkpoint, seed=3)
    got = session.run(x.transpose(0, 2, 3, 1).copy() if fmt == "litert" else x)
    assert np.abs(got - torch_logits(checkpoint, x)).max() <= 1e-3


@pytest.mark.slow
def test_parity_check_catches_a_perturbed_model(bundles, checkpoint):
    """Negative control: the same comparison against a model with one conv changed by 10% fails."""
    from edgeseg.exporters.verify import compare

    out, _ = bundles("litert", "fp32")
    session = open_session(out)
    model = load_model(checkpoint).model.eval()
    x = torch.from_numpy(normalised(checkpoint, n=2, seed=5))
    honest = compare(session, model, None, x, class_map=False, channels_last=True)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[0] > 8)
    with torch.no_grad():
        conv.weight.mul_(1.1)
    perturbed = compare(session, model, None, x, class_map=False, channels_last=True)
    assert honest["max_abs_logit"] <= 1e-4 < 1e-3 < perturbed["max_abs_logit"]


@pytest.mark.slow
def test_metadata_is_embedded_in_each_mobile_file(bundles):
    import coremltools as ct

    from edgeseg.exporters import executorch_export, litert_export

    for fmt, read in (("executorch", executorch_export.read_metadata), ("litert", litert_export.read_metadata)):
        out, meta = bundles(fmt, "fp32")
        embedded = read(out / meta["artifact"]["file"])
        assert embedded["classes"] == meta["classes"] and embedded["input"] == meta["input"], fmt
    out, meta = bundles("coreml", "fp16")
    spec = ct.models.MLModel(str(out / "model.mlpackage"), skip_model_load=True).get_spec()
    embedded = json.loads(spec.description.metadata.userDefined["edgeseg"])
    assert embedded["classes"] == meta["classes"]
    assert spec.description.metadata.userDefined["classes"].startswith("sky,")


@pytest.mark.parametrize(
    "fmt,precision,dtype", [("executorch", "fp32", "uint8"), ("litert", "int8", "uint8"), ("coreml", "fp16", "int32")]
)
@pytest.mark.slow
def test_class_map_with_folded_preprocessing(bundles, checkpoint, fmt, precision, dtype):
    out, meta = bundles(fmt, precision, output="class_map", fold_preprocessing=True)
    assert meta["output"] == {**meta["output"], "kind": "class_map", "dtype": dtype, "shape": [1, 64, 80]}
    assert meta["input"]["dtype"] == "uint8" and meta["verification"]["passed"]
    if fmt == "coreml":
        return  # no runtime here; the package checks above passed
    session = open_session(out)
    assert session.input.dtype == "uint8"
    pixels = np.random.default_rng(1).integers(0, 256, (1, 3, 64, 80)).astype(np.uint8)
    classes = session.run(pixels.transpose(0, 2, 3, 1).copy() if fmt == "litert" else pixels)
    assert classes.dtype == np.uint8 and classes.shape == (1, 64, 80)
    loaded = load_model(checkpoint)
    mean = np.asarray(loaded.mean, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(loaded.std, np.float32).reshape(1, 3, 1, 1) * 255
    expected = torch_logits(checkpoint, (pixels.astype(np.float32) - mean) / std).argmax(1)
    assert (classes == expected).mean() >= (0.999 if precision == "fp32" else 0.9)


@pytest.mark.slow
def test_int8_litert_takes_floats_it_quantizes_with_the_tensors_own_scale(bundles):
    out, meta = bundles("litert", "int8")
    quantization = meta["input"]["quantization"]
    assert quantization["dtype"] == "int8" and quantization["scale"] > 0
    session = open_session(out)
    assert session.input.dtype == "float32" and session.info.precision == "int8"
    assert session.info.details["xnnpack_partitions"] >= 1


@pytest.mark.slow
def test_core_ml_package_checks_fail_when_the_package_is_not_what_was_asked(bundles, checkpoint):
    """Negative control for the Linux checks: an fp16 package judged as if int8 weights were asked."""
    from edgeseg.exporters.built import Built
    from edgeseg.exporters.coreml_export import package_checks

    out, meta = bundles("coreml", "fp16")
    recipe = recipe_from_dict(tiny_recipe_dict())
    job = prepare_job(checkpoint, recipe, ExportTarget(format="coreml", precision="int8"))
    built = Built("model.mlpackage", job.fp32, "fp32", {"mil_ops": meta["artifact"]["mil_ops"]})
    checks = package_checks(job, out / "model.mlpackage", built)
    assert not checks["weights"][0] and checks["input"][0] and checks["mil_program"][0]
    built.facts["mil_ops"] = {**meta["artifact"]["mil_ops"], "conv": 1}
    assert not package_checks(job, out / "model.mlpackage", built)["mil_program"][0]


@pytest.mark.slow
def test_kit_runs_tflite_bundles_without_torch_or_edgeseg(bundles, tmp_path):
    from PIL import Image

    image = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(image)
    for options in ({}, {"output": "class_map", "fold_preprocessing": True}):
        out, _ = bundles("litert", "int8", **options)
        run_kit_without_torch(out, [image], tmp_path / "overlays")
        classes = np.asarray(Image.open(tmp_path / "overlays" / "street_classes.png"))
        assert classes.shape == (90, 120) and classes.max() < 8


@pytest.mark.slow
def test_kit_runs_pte_bundles_through_executorch_without_edgeseg(bundles, tmp_path):
    """ExecuTorch's Python runtime needs torch; the kit itself needs nothing from edgeseg."""
    import subprocess

    from PIL import Image

    out, _ = bundles("executorch", "fp32")
    image = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(image)
    block_edgeseg = (
        "import runpy, sys\n"
        "class F:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('edgeseg', 'torchvision', 'nncf', 'timm'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, F())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    kit = REPO / "export" / "python" / "segment.py"
    cmd = [sys.executable, "-c", block_edgeseg, str(kit), str(out), str(image), "--out", str(tmp_path / "o")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.asarray(Image.open(tmp_path / "o" / "street_classes.png")).shape == (90, 120)


EXTRAS = [("litert", "litert_torch"), ("executorch", "executorch"), ("coreml", "coremltools")]


@pytest.mark.parametrize("fmt,module", EXTRAS)
def test_a_missing_extra_is_refused_before_any_stage_with_its_install_command(tmp_path, monkeypatch, fmt, module):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    recipe = tmp_path / "r.yaml"
    precision = FORMATS[fmt].precisions[0]
    recipe.write_text(json.dumps(tiny_recipe_dict(export={"targets": [{"format": fmt, "precision": precision}]})))
    result = CliRunner().invoke(app, ["build", str(recipe), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 7, result.output
    assert f'pip install "edgeseg[{fmt}]"' in result.output.replace("\n", "")
    assert not (tmp_path / "runs" / "tiny" / "train").exists(), "nothing ran"


def test_mobile_targets_are_fixed_shape_and_say_which_precisions_they_have():
    with pytest.raises(RecipeError, match=r"export.*litert models are exported at a fixed input size"):
        recipe_from_dict(tiny_recipe_dict(export={"targets": [{"format": "litert"}], "dynamic_hw": True}))
    with pytest.raises(RecipeError, match=r"export.targets.0.*use fp16"):
        recipe_from_dict(tiny_recipe_dict(export={"targets": [{"format": "coreml", "precision": "fp32"}]}))


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs there")
def test_core_ml_runtime_says_it_needs_macos(tmp_path):
    package = tmp_path / "model.mlpackage"
    package.mkdir()
    with pytest.raises(DependencyError, match="macOS only"):
        open_session(package)


@pytest.mark.slow
def test_pt2e_keeps_named_modules_in_float_and_refuses_unknown_ones(bundles, checkpoint):
    from edgeseg.errors import ExportError
    from edgeseg.exporters.pt2e import conv_groups

    groups = conv_groups(load_model(checkpoint).model)
    assert groups[0] == "backbone.0" and groups[-1] == "classifier.high_classifier"
    _, int8 = bundles("executorch", "int8")
    _, partly = bundles("executorch", "int8", pt2e={"float_modules": ["backbone.0"]})
    assert partly["artifact"]["float_modules"] == ["backbone.0"] and partly["verification"]["passed"]
    fp32_size = bundles("executorch", "fp32")[1]["artifact"]["size_bytes"]
    # backbone.0's weights stay float32 (4 bytes each, not 1): a bigger program than all-int8
    assert int8["artifact"]["size_bytes"] < partly["artifact"]["size_bytes"] < 0.6 * fp32_size
    recipe = recipe_from_dict(tiny_recipe_dict(export={"pt2e": {"float_modules": ["backbone.00"]}}))
    with pytest.raises(ExportError, match=r"export.pt2e.float_modules\[0\]: no module 'backbone.00'.*backbone.0"):
        export_checkpoint(checkpoint, recipe, ExportTarget(format="litert", precision="int8"), checkpoint.parent / "x")


@pytest.mark.slow
def test_pt2e_fallback_ranks_blocks_and_reports_the_search(bundles):
    pt2e = {"max_miou_drop": 0.01, "max_fallback_groups": 2, "sensitivity_images": 4}
    # at output stride 2 (the CamVid recipes'): the search scores class ids brought back to the masks' size
    _, meta = bundles("litert", "int8", output_stride=2, pt2e=pt2e)
    fallback = meta["artifact"]["fallback"]
    assert fallback["images"] == 4 and fallback["budget_miou_drop"] == 0.01
    assert len(fallback["ranking"]) == 17 and [r["miou_drop"] for r in fallback["ranking"]] == sorted(
        (r["miou_drop"] for r in fallback["ranking"]), reverse=True
    )
    assert len(meta["artifact"]["float_modules"]) <= 2 and meta["verification"]["passed"]


@pytest.mark.slow
def test_a_built_run_adds_phone_targets_without_retraining(tmp_path, tiny_recipe):
    """Training and the ONNX export are cache hits; the bench times the LiteRT file through
    LiteRT and lists the Core ML package as not run here, with the reason."""
    from edgeseg.build.pipeline import build

    onnx = {"format": "onnx"}
    build(tiny_recipe(train={"epochs": 1}, export={"targets": [onnx]}), tmp_path)
    phones = [onnx, {"format": "litert", "precision": "int8"}, {"format": "coreml", "precision": "fp16"}]
    added = build(tiny_recipe(train={"epochs": 1}, export={"targets": phones}), tmp_path)
    cached = {s.name: s.cached for s in added}
    assert cached["train"] and cached["export-onnx-fp32"] and not cached["export-litert-int8"]
    bench = json.loads((tmp_path / "tiny" / "bench" / "bench.json").read_text())
    rows = {r["name"]: r for r in bench["results"]}
    assert rows["litert-int8"]["session"]["runtime"] == "litert" and rows["litert-int8"]["accuracy"]["miou"] >= 0
    assert rows["litert-int8"]["latency"][0]["p50_ms"] > 0
    if sys.platform != "darwin":
        assert [n["name"] for n in bench["not_run"]] == ["coreml-fp16"]
        assert "macOS only" in bench["not_run"][0]["reason"]
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert "litert-int8" in [a["name"] for a in metrics["artifacts"]]
    if sys.platform != "darwin":
        assert metrics["not_run"][0]["name"] == "coreml-fp16"
        assert "Not measured on this machine: coreml-fp16" in (tmp_path / "tiny" / "report.md").read_text()


@pytest.mark.slow
def test_the_core_ml_graph_evaluation_tells_a_perturbed_model_apart(bundles, checkpoint):
    """Negative control: the op-by-op evaluation of the saved program matches the model it came
    from, and not the same model with one conv changed by 10%."""
    from edgeseg.exporters.coreml_mil import ProgramSession
    from edgeseg.exporters.deploy import DeployModel
    from edgeseg.exporters.verify import compare

    out, _ = bundles("coreml", "fp16")
    loaded = load_model(checkpoint)
    model = DeployModel(loaded.model, loaded.mean, loaded.std, fold_preprocessing=True).eval()
    pixels = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (2, 3, 64, 80)).astype(np.float32))
    session = ProgramSession(out / "model.mlpackage")
    honest = compare(session, model, None, pixels, class_map=False)
    conv = next(m for m in loaded.model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[0] > 8)
    with torch.no_grad():
        conv.weight.mul_(1.1)
    perturbed = compare(session, model, None, pixels, class_map=False)
    assert honest["max_abs_logit"] < 1e-3 < perturbed["max_abs_logit"]


@pytest.mark.parametrize("quantizer", ["executorch", "litert"])
def test_relu6_is_quantized_after_its_clamp_not_on_the_convs_output(quantizer):
    """XNNPACK's and LiteRT's quantizers fuse conv with ReLU only: left alone they quantize a
    conv's output before its ReLU6, on a grid that spends most of its steps on the values the
    clamp throws away. ``ClampsAfterConvs`` observes after the clamp, as for ReLU."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeseg.exporters.executorch_export import xnnpack_quantizer
    from edgeseg.exporters.litert_export import litert_quantizer
    from edgeseg.exporters.pt2e import ClampsAfterConvs

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(8)  # pre-activations reach far past 0..6, the part the clamp keeps
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(8), torch.nn.ReLU6()).eval()
    images = torch.randn(8, 3, 16, 16)
    make = {"executorch": xnnpack_quantizer, "litert": litert_quantizer}[quantizer]

    def quantized(wrapped: bool):
        captured = torch.export.export(model, (images[:1],)).module()
        prepared = prepare_pt2e(captured, ClampsAfterConvs(make()) if wrapped else make())
        with torch.no_grad():
            for image in images:
                prepared(image[None])
        return convert_pt2e(prepared, fold_quantize=quantizer == "executorch")

    def clamp(module):
        (node,) = [n for n in module.graph.nodes if "hardtanh" in str(n.target)]
        return node

    plain, fused = quantized(False), quantized(True)
    before = clamp(plain).args[0]  # left alone: the conv's output is dequantized into the clamp
    assert "dequantize" in str(before.target)
    assert "dequantize" not in str(clamp(fused).args[0].target)  # fused: the conv feeds the clamp
    (after,) = clamp(fused).users
    assert "quantize" in str(after.target)
    # the grid: 256 steps over the 0..6 the clamp keeps, not over the conv's whole range
    assert after.args[1] <= 6 / 255 * 1.01 and before.args[1] > 3 * after.args[1], (after.args[1], before.args[1])


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which(QEMU["x86-avx2"]) is None, reason="qemu-user-static is not installed (.ci/run installs it)"
)
def test_executorch_int8_runs_under_emulated_avx2_with_the_native_class_ids(bundles, checkpoint):
    """x86 without VNNI runs this venv's XNNPACK under qemu (how a build checks an ExecuTorch int8
    artifact for target any or x86-avx2). arm64 cannot: test_targets checks the reason recorded."""
    from edgeseg.runtimes.emulate import EmulatedSession

    out, _ = bundles("executorch", "int8")
    x = normalised(checkpoint)
    with EmulatedSession(out, "executorch", "x86-avx2") as emulated:
        assert emulated.info.details["emulated"] == "x86-avx2"
        assert (emulated.run(x).argmax(1) == open_session(out).run(x).argmax(1)).all()
