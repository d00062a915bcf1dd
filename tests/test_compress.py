"""Compression on tiny models: PTQ, QAT, the JSON round trip, float fallback, export, build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_recipe_dict
from edgeseg.compress import compress_checkpoint
from edgeseg.errors import ExportError, RecipeError
from edgeseg.eval import evaluate_checkpoint
from edgeseg.exporters import export_checkpoint
from edgeseg.recipe import ExportTarget, recipe_from_dict
from edgeseg.train.checkpoint import load_model, read_checkpoint, save_atomic

DATA = {"synthetic": {"num_train": 48, "num_val": 8, "height": 64, "width": 80}}


def recipe_with(*steps, **sections):
    return recipe_from_dict(tiny_recipe_dict(train={"epochs": 6}, data=DATA, compress={"steps": list(steps)}, **sections))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from edgeseg.train.loop import fit

    out = tmp_path_factory.mktemp("tiny-train")
    torch.set_num_threads(2)
    fit(recipe_with(), out, show_progress=False)
    return out / "best.pt"


def test_qat_checkpoint_rebuilds_from_its_json_config(checkpoint, tmp_path):
    recipe = recipe_with({"kind": "qat", "epochs": 1, "calibration_samples": 8})
    report = compress_checkpoint(recipe, checkpoint, tmp_path)
    step = report["steps"][0]
    assert step["kind"] == "qat" and step["qat"]["epochs"] == 1 and (tmp_path / "qat" / "best.pt").is_file()
    assert report["fp32"]["gmacs"] > 0 and report["fp32"]["params_m"] > 0 and set(step["per_class_iou_delta"]) >= {"road", "sky"}
    data = read_checkpoint(tmp_path / "model.pt")  # torch.load(weights_only=True): no pickled objects
    compression = data["compression"]
    assert compression["kind"] == "nncf-int8" and json.loads(json.dumps(compression)) == compression
    rebuilt = load_model(tmp_path / "model.pt").model
    assert sum("SymmetricQuantizer" in type(m).__name__ or "AsymmetricQuantizer" in type(m).__name__ for m in rebuilt.modules()) > 10
    assert evaluate_checkpoint(tmp_path / "model.pt")["miou"] == pytest.approx(step["miou"], abs=1e-6)
    assert json.loads((tmp_path / "report.json").read_text()) == report


def test_int8_exports_take_the_compressed_quantizers(checkpoint, tmp_path):
    # A 6-epoch tiny model scores ~11 mIoU: its logits are near ties almost everywhere, so
    # OpenVINO's integer kernels flip ~9% of pixels against the float fake-quant reference. On the
    # real CamVid model the same path agrees on 99.6% (benchmarks/results/export_camvid_lite0.json).
    recipe = recipe_with({"kind": "ptq", "calibration_samples": 8}, export={"verify": {"min_agreement_int8": 0.85}})
    compress_checkpoint(recipe, checkpoint, tmp_path / "c")
    for fmt in ("onnx", "openvino"):
        meta = export_checkpoint(tmp_path / "c" / "model.pt", recipe, ExportTarget(format=fmt, precision="int8"), tmp_path / fmt)
        verification = meta["verification"]
        assert verification["reference"] == "nncf fake-quantized" and verification["passed"]
        assert verification["agreement_vs_fp32"] is None  # no float model inside a quantized checkpoint
        assert meta["artifact"]["quantization"] == "from the compression stage (nncf)"
    with pytest.raises(ExportError, match="checkpoint is quantized .* export fp32/fp16 from the fine-tuned checkpoint"):
        export_checkpoint(tmp_path / "c" / "model.pt", recipe, ExportTarget(format="onnx"), tmp_path / "fp32")


def test_tensorrt_int8_refuses_unsigned_quantizers(checkpoint, tmp_path):
    from edgeseg.exporters import _onnx_int8, prepare_job

    recipe = recipe_with({"kind": "ptq", "calibration_samples": 8, "target": "cpu"})
    compress_checkpoint(recipe, checkpoint, tmp_path / "c")
    job = prepare_job(tmp_path / "c" / "model.pt", recipe, ExportTarget(format="tensorrt", precision="int8"))
    with pytest.raises(ExportError, match="quantized for target 'cpu'.*target: tensorrt"):
        _onnx_int8(job, tmp_path / "x.onnx", for_tensorrt=True)


def test_tensorrt_target_quantizes_signed_and_symmetric(checkpoint, tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgeseg.exporters import _onnx_int8, prepare_job

    recipe = recipe_with({"kind": "ptq", "calibration_samples": 8, "target": "tensorrt"})
    compress_checkpoint(recipe, checkpoint, tmp_path / "c")
    job = prepare_job(tmp_path / "c" / "model.pt", recipe, ExportTarget(format="tensorrt", precision="int8"))
    _onnx_int8(job, tmp_path / "trt.onnx", for_tensorrt=True)
    graph = onnx.load(str(tmp_path / "trt.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero_points = [inits[n.input[2]] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_a_quantization_hostile_layer_ends_in_float(checkpoint, tmp_path):
    """One channel 10^4 times larger than the rest ruins a per-tensor quantizer; fallback must find it."""
    data = read_checkpoint(checkpoint)
    state, channel = data["model"], 5
    # Scale a channel after the head's conv+BN+ReLU and undo it in the classifier that reads it:
    # the fp32 function is unchanged, but the tensor between them is hostile to int8.
    state["classifier.cbr.1.weight"][channel] *= 1e4
    state["classifier.cbr.1.bias"][channel] *= 1e4
    state["classifier.high_classifier.weight"][:, channel] /= 1e4
    hostile = tmp_path / "hostile.pt"
    save_atomic(data, hostile)
    assert evaluate_checkpoint(hostile)["miou"] == pytest.approx(evaluate_checkpoint(checkpoint)["miou"], abs=0.05)

    budget = 1.0
    recipe = recipe_with({"kind": "ptq", "calibration_samples": 16, "max_miou_drop": budget, "sensitivity_images": 16})
    report = compress_checkpoint(recipe, hostile, tmp_path / "c")
    fallback = report["steps"][0]["fallback"]
    assert fallback["drop_before"] > budget, "the hostile layer must hurt under int8"
    assert fallback["within_budget"] and fallback["drop_after"] <= budget
    assert fallback["sensitivity"][0]["group"].startswith("classifier/cbr"), fallback["sensitivity"][:3]
    kept = [k["group"] for k in fallback["kept_in_float"]]
    assert kept[0].startswith("classifier/cbr")
    # the choice survives the checkpoint: rebuilt, those quantizers are still off
    from edgeseg.compress.quantize import quantizer_groups

    groups = quantizer_groups(load_model(tmp_path / "c" / "model.pt").model)
    assert all(not q.is_enabled_quantization() for q in groups[kept[0]])
    assert any(q.is_enabled_quantization() for name, qs in groups.items() if name not in kept for q in qs)


def test_recipe_rejects_two_quantization_steps():
    with pytest.raises(RecipeError, match="quantizes more than once"):
        recipe_with({"kind": "ptq"}, {"kind": "qat"})


def test_build_runs_compress_and_feeds_int8_exports(tmp_path):
    from edgeseg.pipeline import build

    steps = [{"kind": "ptq", "calibration_samples": 8}]
    targets = [{"format": "onnx", "precision": "fp32"}, {"format": "onnx", "precision": "int8"}]
    recipe = recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, compress={"steps": steps}, export={"targets": targets}))
    first = build(recipe, tmp_path)
    assert [s.name for s in first] == ["train", "eval", "compress", "export-onnx-fp32", "export-onnx-int8"]
    int8 = json.loads((tmp_path / "tiny" / "export-onnx-int8" / "model.json").read_text())
    assert int8["artifact"]["quantization"] == "from the compression stage (nncf)"
    assert json.loads((tmp_path / "tiny" / "export-onnx-fp32" / "model.json").read_text())["verification"]["reference"] == "fp32"
    steps[0]["calibration_samples"] = 12
    again = build(recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, compress={"steps": steps}, export={"targets": targets})), tmp_path)
    assert [(s.name, s.cached) for s in again] == [
        ("train", True), ("eval", True), ("compress", False), ("export-onnx-fp32", True), ("export-onnx-int8", False),
    ]
