"""Exporters, verification and runtimes on a tiny trained model: every CPU format, checked."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from edgeseg.errors import DependencyError, EdgesegError, ExportError
from edgeseg.exporters import export_checkpoint
from edgeseg.formats import FORMATS
from edgeseg.models.checkpoint import load_model
from edgeseg.recipe import ExportTarget, recipe_from_dict
from edgeseg.runtimes import open_session

from conftest import run_kit_without_torch, tiny_recipe_dict


def has_cuda_gpu() -> bool:
    try:
        from edgeseg.runtimes.tensorrt_rt import gpu_facts

        gpu_facts()
        return True
    except Exception:
        return False


needs_gpu = pytest.mark.skipif(not has_cuda_gpu(), reason="needs an NVIDIA GPU with CUDA")


def recipe_with(**export):
    return recipe_from_dict(tiny_recipe_dict(export=export))


def torch_logits(checkpoint, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_model(checkpoint).model(torch.from_numpy(images)).numpy()


def normalised_inputs(checkpoint, size=(64, 80), n=2, seed=0) -> np.ndarray:
    loaded = load_model(checkpoint)
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 3, *size)).astype(np.float32)
    mean = np.asarray(loaded.mean, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(loaded.std, np.float32).reshape(1, 3, 1, 1) * 255
    return (pixels - mean) / std


@pytest.mark.slow
def test_a_deeplabv3plus_model_trained_with_lovasz_exports_and_verifies(tmp_path):
    """The stride-4 head at a size that is no multiple of 16, through ONNX and OpenVINO int8."""
    from edgeseg.train.loop import fit

    recipe = recipe_from_dict(
        tiny_recipe_dict(
            data={"synthetic": {"num_train": 8, "num_val": 4, "height": 72, "width": 88}},
            model={"head": "deeplabv3plus"},
            train={"epochs": 1, "lovasz_weight": 0.5},
        )
    )
    fit(recipe, tmp_path / "train")
    for fmt, precision in [("onnx", "fp32"), ("openvino", "int8")]:
        out = tmp_path / f"{fmt}-{precision}"
        meta = export_checkpoint(
            tmp_path / "train" / "best.pt", recipe, ExportTarget(format=fmt, precision=precision), out
        )
        assert meta["verification"]["passed"] and meta["output"]["shape"] == [1, 8, 72, 88]
        if precision == "fp32":
            assert meta["verification"]["max_abs_logit"] <= 1e-3


# Every format verified on the CPU, at every precision it offers: derived from the format table.
# The phone formats (fixed shape, their own layouts and quantizer) are tested in test_mobile.py.
ON_CPU = [f for f in FORMATS.values() if f.verify_runtime.device == "cpu" and not f.fixed_shape]
CPU_TARGETS = [(f.name, p) for f in ON_CPU for p in f.precisions]


@pytest.mark.parametrize("fmt,precision", CPU_TARGETS, ids=[f"{f}-{p}" for f, p in CPU_TARGETS])
@pytest.mark.slow
def test_every_cpu_format_builds_verifies_and_describes_itself(checkpoint, tmp_path, fmt, precision):
    out = tmp_path / "bundle"
    meta = export_checkpoint(checkpoint, recipe_with(), ExportTarget(format=fmt, precision=precision), out)
    on_disk = json.loads((out / "model.json").read_text())
    assert on_disk == meta
    assert (out / meta["artifact"]["file"]).is_file()
    verification = meta["verification"]
    assert verification["passed"] and verification["images"] == 8
    assert 0 <= verification["agreement"] <= 1 and 0 <= verification["agreement_vs_fp32"] <= 1
    assert meta["classes"]["names"][0] == "sky" and len(meta["classes"]["palette"]) == 8
    assert meta["input"]["shape"] == [1, 3, 64, 80] and meta["output"]["shape"] == [1, 8, 64, 80]
    assert meta["recipe"]["sha256"] == recipe_with().digest()
    assert "onnxruntime" in meta["versions"] and "torch" in meta["versions"]
    if precision == "fp32":
        assert verification["max_abs_logit"] <= 1e-3 and verification["agreement"] >= 0.999
    if precision == "int8" and fmt != "openvino":
        assert verification["reference"] == "nncf fake-quantized"
        # int8 weights; MobileNetV3's squeeze-excite convs stay float (NNCF leaves them), so > 1/4
        assert meta["artifact"]["size_bytes"] < 0.7 * _fp32_onnx_size(checkpoint, tmp_path)
    # An independent check through the public runtime API, not the exporter's own verifier.
    if precision == "fp32":
        session = open_session(out)
        x = normalised_inputs(checkpoint)[:1]
        assert np.abs(session.run(x) - torch_logits(checkpoint, x)).max() <= 1e-3
    assert not list(tmp_path.glob(".*")), "no scratch directory is left behind"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no staging files in the bundle"


def _fp32_onnx_size(checkpoint, tmp_path) -> int:
    out = tmp_path / "fp32-for-size"
    if not out.exists():
        export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="onnx"), out)
    return (out / "model.onnx").stat().st_size


def test_onnxruntime_static_ptq_is_selectable(checkpoint, tmp_path):
    recipe = recipe_with(calibration={"method": "ort_static", "num_samples": 8})
    meta = export_checkpoint(checkpoint, recipe, ExportTarget(format="onnx", precision="int8"), tmp_path / "b")
    assert meta["artifact"]["quantization"].startswith("onnxruntime static PTQ")
    assert meta["verification"]["reference"] == "fp32" and meta["verification"]["passed"]
    # the other two instruction sets, recorded as not checked, and why (tiny recipes turn it off)
    on_target = [(c["checked"], c["why"]) for c in meta["verification"]["on_target"]]
    assert on_target == [(False, "export.verify.on_target is false")] * 2


@pytest.mark.slow
def test_dynamic_batch_and_size_export_matches_torch_at_two_sizes(checkpoint, tmp_path):
    recipe = recipe_with(dynamic_batch=True, dynamic_hw=True)
    meta = export_checkpoint(checkpoint, recipe, ExportTarget(format="onnx"), tmp_path / "b")
    assert meta["input"]["shape"] == [("batch"), 3, "height", "width"]
    assert meta["verification"]["at_second_size"]["size"] == [48, 56]
    for fmt_dir, target in (("b", None), ("ov", ExportTarget(format="openvino"))):
        if target is not None:
            export_checkpoint(checkpoint, recipe, target, tmp_path / fmt_dir)
        session = open_session(tmp_path / fmt_dir)
        for size, batch in (((64, 80), 1), ((96, 128), 3), ((40, 72), 2)):
            x = normalised_inputs(checkpoint, size, batch)
            got = session.run(x)
            assert got.shape == (batch, 8, *size)
            assert np.abs(got - torch_logits(checkpoint, x)).max() <= 1e-3


def test_class_map_output_with_folded_preprocessing(checkpoint, tmp_path):
    recipe = recipe_with(output="class_map", fold_preprocessing=True)
    meta = export_checkpoint(checkpoint, recipe, ExportTarget(format="onnx"), tmp_path / "b")
    assert meta["input"]["dtype"] == "uint8" and meta["output"]["kind"] == "class_map"
    assert meta["output"]["shape"] == [1, 64, 80] and "max_abs_logit" not in meta["verification"]
    session = open_session(tmp_path / "b")
    assert session.input.dtype == "uint8"
    pixels = np.random.default_rng(1).integers(0, 256, (1, 3, 64, 80)).astype(np.uint8)
    classes = session.run(pixels)
    assert classes.dtype == np.uint8 and classes.shape == (1, 64, 80)
    loaded = load_model(checkpoint)
    mean = np.asarray(loaded.mean, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.asarray(loaded.std, np.float32).reshape(1, 3, 1, 1) * 255
    expected = torch_logits(checkpoint, (pixels.astype(np.float32) - mean) / std).argmax(1)
    assert (classes == expected).mean() >= 0.999


@pytest.mark.slow
def test_metadata_is_embedded_in_the_artifacts(checkpoint, tmp_path):
    import onnx
    import openvino as ov

    meta = export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="onnx"), tmp_path / "onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "onnx" / "model.onnx")).metadata_props}
    embedded = json.loads(props["edgeseg"])
    assert embedded["classes"] == meta["classes"] and embedded["input"] == meta["input"]
    export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="openvino", precision="fp16"), tmp_path / "ov")
    model = ov.Core().read_model(str(tmp_path / "ov" / "model.xml"))
    info = json.loads(model.get_rt_info(["edgeseg", "json"]).astype(str))
    assert info["artifact"]["precision"] == "fp16" and info["classes"] == meta["classes"]
    assert model.get_rt_info(["edgeseg", "class_names"]).astype(str).split(",")[0] == "sky"


@pytest.mark.slow
def test_qdq_rewrites_keep_the_values_and_let_onnxruntime_fuse_int8(checkpoint, tmp_path):
    import onnx
    import onnxruntime as ort

    from edgeseg.compress.quantize import quantize_ptq, set_qdq_export
    from edgeseg.exporters.onnx_export import torch_to_onnx
    from edgeseg.exporters.qdq import activations_to_uint8, fold_weight_quantizers, scalars_into_quantizers

    model = load_model(checkpoint).model  # MobileNetV3-Small: HardSwish, squeeze-excite, ReLU
    calibration = [torch.from_numpy(normalised_inputs(checkpoint, seed=s)[:1]) for s in range(4)]
    quantized = quantize_ptq(model, calibration)
    set_qdq_export(quantized)
    raw = tmp_path / "raw.onnx"
    torch_to_onnx(quantized, calibration[0], raw, opset=17, output_kind="logits", dynamic_batch=False, dynamic_hw=False)

    def rewritten(name, *rewrites):
        graph = onnx.load(str(raw))
        for rewrite in rewrites:
            rewrite(graph)
        path = tmp_path / f"{name}.onnx"
        onnx.save(graph, str(path))
        return path

    exact = rewritten("exact", fold_weight_quantizers, activations_to_uint8)
    everything = rewritten("all", fold_weight_quantizers, activations_to_uint8, scalars_into_quantizers)

    def run(path, level, optimized=None):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        if optimized:
            options.optimized_model_filepath = str(optimized)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    x = normalised_inputs(checkpoint, seed=9)[:1]
    reference_semantics = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    before = run(raw, reference_semantics)
    np.testing.assert_array_equal(before, run(exact, reference_semantics))
    np.testing.assert_allclose(run(everything, reference_semantics), before, atol=1e-5 * np.abs(before).max())

    def fused_int8_ops(path) -> int:
        out = tmp_path / f"{path.stem}.opt.onnx"
        run(path, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, out)
        return sum(n.op_type.startswith("QLinear") for n in onnx.load(str(out)).graph.node)

    assert fused_int8_ops(raw) < fused_int8_ops(exact) < fused_int8_ops(everything)


def test_fold_batchnorm_and_decompose_hardswish_keep_the_function():
    from edgeseg.models import build_model
    from edgeseg.models.replay import prepare_for_int8
    from edgeseg.recipe import ModelSpec

    model = build_model(
        ModelSpec(backbone="mobilenet_v3_small", backbone_weights="none"), 5, load_pretrained=False
    ).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 80)
    prepared = prepare_for_int8(model, x[:1])
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.Hardswish) for m in prepared.modules())
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_failed_verification_fails_loudly_and_publishes_nothing(checkpoint, tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(
        ExportError, match=r"onnx-int8 disagrees with its PyTorch reference .*agreement .*export\.verify"
    ):
        _export_with_broken_reference(checkpoint, recipe_with(verify={"num_images": 2}), out)
    assert not out.exists() and not list(tmp_path.glob(".*"))


def _export_with_broken_reference(checkpoint, recipe, out):
    """Export onnx-int8 while the verifier's reference is perturbed, as a broken export would be."""
    import edgeseg.exporters.onnx_export as onnx_export

    original = onnx_export.build_int8

    def perturbed(job, path, *, for_tensorrt):
        built = original(job, path, for_tensorrt=for_tensorrt)
        built.reference = _Shifted(built.reference)
        return built

    onnx_export.build_int8 = perturbed
    try:
        export_checkpoint(checkpoint, recipe, ExportTarget(format="onnx", precision="int8"), out)
    finally:
        onnx_export.build_int8 = original


class _Shifted(torch.nn.Module):
    """A reference that disagrees on every pixel: class scores rolled by one."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).roll(1, dims=1)


def test_openvino_fp32_means_fp32_unless_asked(checkpoint, tmp_path):
    from edgeseg.bench.environment import cpu_flags

    export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="openvino"), tmp_path / "ov")
    assert open_session(tmp_path / "ov", threads=2).info.precision == "f32"
    # OpenVINO's own default follows the CPU; the session reports what it compiled, on any host.
    has_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))
    assert open_session(tmp_path / "ov", precision_hint="default").info.precision == ("bf16" if has_bf16 else "f32")


def test_runtime_errors_name_the_fix(checkpoint, tmp_path):
    export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="onnx"), tmp_path / "b")
    with pytest.raises(EdgesegError, match="unknown runtime 'onnxrt'.*did you mean 'onnxruntime'"):
        open_session(tmp_path / "b", "onnxrt")
    with pytest.raises(EdgesegError, match="cannot open .xml files"):
        (tmp_path / "m.xml").write_text("<net/>")
        open_session(tmp_path / "m.xml", "onnxruntime")
    with pytest.raises(DependencyError, match="CUDAExecutionProvider is not available"):
        open_session(tmp_path / "b", device="cuda")


def test_engine_header_mismatch_says_how_to_rebuild(tmp_path):
    from edgeseg.runtimes.tensorrt_rt import check_compatible, read_engine_file, write_engine_file

    path = tmp_path / "model.engine"
    header = {"tensorrt": "10.3.0", "compute_capability": "8.7", "gpu": "Orin", "precision": "int8"}
    write_engine_file(path, header, b"\x00engine-bytes")
    assert read_engine_file(path) == (header, b"\x00engine-bytes")
    check_compatible(path, header, "10.3.0", {"compute_capability": "8.7", "gpu": "Orin"})
    with pytest.raises(
        EdgesegError,
        match=r"TensorRT 10.3.0 for compute capability 8.7.*TensorRT 10.8.0 on H100 .*compute capability 9.0"
        r".*edgeseg export CHECKPOINT --format tensorrt --precision int8",
    ):
        check_compatible(path, header, "10.8.0", {"compute_capability": "9.0", "gpu": "H100"})


@pytest.mark.skipif(has_cuda_gpu(), reason="checks the no-GPU message")
def test_tensorrt_without_a_gpu_is_a_clear_dependency_error(checkpoint, tmp_path):
    out = tmp_path / "trt"
    with pytest.raises(DependencyError, match="(NVIDIA GPU|tensorrt is not installed|cuda-python)"):
        export_checkpoint(checkpoint, recipe_with(), ExportTarget(format="tensorrt", precision="fp16"), out)
    assert not out.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_engine_builds_verifies_and_refuses_a_foreign_header(checkpoint, tmp_path, precision):
    pytest.importorskip("tensorrt")
    from edgeseg.runtimes.tensorrt_rt import read_engine_file, write_engine_file

    recipe = recipe_with(dynamic_batch=True, dynamic_hw=True)
    meta = export_checkpoint(checkpoint, recipe, ExportTarget(format="tensorrt", precision=precision), tmp_path / "trt")
    assert meta["verification"]["passed"] and meta["artifact"]["engine"]["compute_capability"]
    session = open_session(tmp_path / "trt")
    x = normalised_inputs(checkpoint, (96, 128), 2)
    assert session.run(x).shape == (2, 8, 96, 128)
    header, blob = read_engine_file(tmp_path / "trt" / "model.engine")
    write_engine_file(tmp_path / "trt" / "model.engine", {**header, "compute_capability": "1.0"}, blob)
    with pytest.raises(EdgesegError, match="Rebuild it on this machine"):
        open_session(tmp_path / "trt")


@pytest.mark.slow
def test_cli_export_writes_bundles_and_reports_errors(checkpoint, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app, ["export", str(checkpoint), "--format", "openvino", "--precision", "fp16", "--out", "bundle"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "openvino-fp16" in result.output
        and json.loads((tmp_path / "bundle" / "model.json").read_text())["artifact"]["format"] == "openvino"
    )
    shutil.rmtree(tmp_path / "bundle")
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "edgeseg", "export", str(checkpoint), "--format", "onx"], capture_output=True, text=True
    )
    assert (
        bad.returncode == 2 and f"format: 'onx' is not one of {', '.join(FORMATS)} (did you mean 'onnx'?)" in bad.stderr
    )
    missing = subprocess.run(
        [sys.executable, "-m", "edgeseg", "export", str(tmp_path / "nope.pt")], capture_output=True, text=True
    )
    assert missing.returncode == 6 and "checkpoint not found" in missing.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "target,export",
    [
        (("onnx", "fp32"), {}),
        (("ort", "int8"), {"output": "class_map", "fold_preprocessing": True}),
        (("openvino", "fp16"), {}),
    ],
    ids=["onnx-fp32", "ort-int8-class-map-uint8-input", "openvino-fp16"],
)
@pytest.mark.slow
def test_deployment_kit_runs_a_bundle_without_torch(checkpoint, tmp_path, target, export):
    from PIL import Image

    from edgeseg.data import load_split

    recipe = recipe_with(**export)
    export_checkpoint(checkpoint, recipe, ExportTarget(format=target[0], precision=target[1]), tmp_path / "bundle")
    val = load_split(recipe.data, "val", recipe.seed)
    paths = []
    for i in range(2):  # at the model's input size, so no resize differs between PIL and torch
        paths.append(tmp_path / f"street{i}.png")
        Image.fromarray(val.images[i].permute(1, 2, 0).numpy()).save(paths[-1])
    run_kit_without_torch(tmp_path / "bundle", paths, tmp_path / "out")
    with torch.no_grad():
        loaded = load_model(checkpoint)
        from edgeseg.eval import predict_logits

        expected = predict_logits(loaded.model, torch.stack(val.images[:2]), loaded.mean, loaded.std).argmax(1).numpy()
    for i, path in enumerate(paths):
        classes = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_classes.png"))
        overlay = Image.open(tmp_path / "out" / f"{path.stem}_overlay.png")
        assert overlay.size == (80, 64) and classes.shape == (64, 80)
        minimum = 0.999 if target[1] != "int8" else 0.95
        assert (classes == expected[i]).mean() >= minimum


def test_recipe_refuses_an_fp32_tensorrt_engine():
    from edgeseg.errors import RecipeError

    with pytest.raises(RecipeError, match=r"export.targets\[0\]: tensorrt engines are built as fp16 or int8"):
        recipe_with(targets=[{"format": "tensorrt", "precision": "fp32"}])


@pytest.mark.slow
def test_runtimes_load_and_run_bundles_without_torch(checkpoint, tmp_path):
    """edgeseg.runtimes is what runs on a device: it must not need the training stack."""
    import subprocess
    import sys

    for target in (ExportTarget(format="onnx"), ExportTarget(format="openvino", precision="int8")):
        export_checkpoint(checkpoint, recipe_with(), target, tmp_path / target.name)
    code = f"""
import sys
class Forbid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "nncf", "timm"):
            raise ImportError(name + " must not be needed")
sys.meta_path.insert(0, Forbid())
import numpy as np
from edgeseg.runtimes import open_session
for bundle in ("onnx-fp32", "openvino-int8"):
    session = open_session({str(tmp_path)!r} + "/" + bundle, threads=1)
    out = session.run(np.zeros((1, 3, 64, 80), np.float32))
    assert out.shape == (1, 8, 64, 80), out.shape
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_torch_runtime_runs_the_checkpoint_itself(checkpoint):
    session = open_session(checkpoint)  # .pt -> the PyTorch reference session
    assert session.info.runtime == "torch" and session.input.dtype == "float32"
    x = normalised_inputs(checkpoint)[:1]
    np.testing.assert_allclose(session.run(x), torch_logits(checkpoint, x), atol=1e-5)
