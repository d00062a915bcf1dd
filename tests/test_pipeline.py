"""`edgeseg build`, eval and predict: caching, atomic stages, the CLI, and the quickstart."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.build import pipeline
from edgeseg.build.pipeline import build
from edgeseg.cli import app

from conftest import tiny_recipe_dict

runner = CliRunner()


@pytest.mark.slow
def test_build_runs_then_hits_the_cache(tmp_path, tiny_recipe):
    recipe = tiny_recipe(train={"epochs": 1})
    first = build(recipe, tmp_path)
    assert [s.cached for s in first] == [False] * 6
    second = build(recipe, tmp_path)
    assert [s.cached for s in second] == [True] * 6
    run = tmp_path / "tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["data", "train", "eval", "export-onnx-fp32", "bench", "report"]
    assert json.loads((run / "metrics.json").read_text())["artifacts"][1]["name"] == "onnx-fp32"
    assert json.loads((run / "export-onnx-fp32" / "model.json").read_text())["verification"]["passed"]
    assert manifest["stages"][1]["outputs"]["best.pt"] == first[1].outputs["best.pt"]
    # Every stage says what went in: its spec, upstream digests, library versions, and when it ran.
    train = manifest["stages"][1]
    assert (
        train["inputs"]["upstream"] == {"data": pipeline.outputs_digest(first[0])}
        and train["inputs"]["spec"]["train"]["epochs"] == 1
    )
    assert {"edgeseg", "torch", "torchvision"} <= set(train["inputs"]["versions"]) and train["started_at"] <= train[
        "finished_at"
    ]
    assert set(manifest["stages"][3]["inputs"]["versions"]) >= {"onnx", "onnxruntime", "openvino", "nncf"}
    assert manifest["stages"][0]["inputs"]["spec"]["splits"] == ["train", "val"]
    data = json.loads((run / "data" / "data.json").read_text())
    assert data["splits"]["train"]["samples"] == 16 and len(data["splits"]["val"]["content_sha256"]) == 64
    assert manifest["resolved_recipe"]["train"]["epochs"] == 1
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["miou"] == first[2].info.miou and metrics["split"] == "val"
    assert not list(run.glob(".*.partial"))


@pytest.mark.slow
def test_changing_eval_reruns_only_eval(tmp_path, tiny_recipe):
    build(tiny_recipe(train={"epochs": 1}), tmp_path)
    again = build(tiny_recipe(train={"epochs": 1}, eval={"splits": ["train"]}), tmp_path)
    # eval.splits ["train"] is already checked and training does not read it; bench scores on it.
    assert [(s.name, s.cached) for s in again] == [
        ("data", True),
        ("train", True),
        ("eval", False),
        ("export-onnx-fp32", True),
        ("bench", False),
        ("report", False),
    ]
    assert list((tmp_path / "tiny").glob("recipe.*.yaml")), "the earlier resolved recipe is archived"


@pytest.mark.slow
def test_changing_export_reruns_only_the_export_stages_it_touches(tmp_path, tiny_recipe):
    targets = [{"format": "onnx"}, {"format": "openvino", "precision": "fp16"}]
    build(tiny_recipe(train={"epochs": 1}, export={"targets": targets}), tmp_path)
    added = build(
        tiny_recipe(train={"epochs": 1}, export={"targets": [*targets, {"format": "onnx", "precision": "fp16"}]}),
        tmp_path,
    )
    assert [(s.name, s.cached) for s in added] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("export-onnx-fp32", True),
        ("export-openvino-fp16", True),
        ("export-onnx-fp16", False),
        ("bench", False),
        ("report", False),
    ]
    changed = build(tiny_recipe(train={"epochs": 1}, export={"targets": targets, "dynamic_hw": True}), tmp_path)
    assert [s.cached for s in changed] == [True, True, True, False, False, False, False]
    forced = build(
        tiny_recipe(train={"epochs": 1}, export={"targets": targets, "dynamic_hw": True}),
        tmp_path,
        force=("export-onnx-fp32",),
    )
    assert [s.cached for s in forced] == [True, True, True, False, True, False, False]  # and what depends on it


def test_a_failing_stage_leaves_no_published_directory(tmp_path, tiny_recipe, monkeypatch):
    import edgeseg.eval as evaluation

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(evaluation, "evaluate_checkpoint", broken)
    with pytest.raises(RuntimeError, match="injected"):
        build(tiny_recipe(train={"epochs": 1}), tmp_path)
    run = tmp_path / "tiny"
    assert (run / "train" / "stage.json").is_file()
    assert not (run / "eval").exists()


@pytest.mark.slow
def test_cli_build_eval_predict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "tiny.yaml"
    export = {
        "targets": [{"format": "onnx"}, {"format": "onnx", "precision": "int8"}],
        "calibration": {"num_samples": 8},
        "verify": {"min_agreement_int8": 0.85},
    }  # a 1-epoch model's near-tie logits
    recipe.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1}, export=export)))
    result = runner.invoke(app, ["build", str(recipe), "--runs", "runs"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^train\s+ran in", result.stdout, re.M) and re.search(
        r"^export-onnx-fp32\s+ran in", result.stdout, re.M
    )
    assert "done: runs/tiny" in result.stdout and "artifacts: onnx-fp32, onnx-int8" in result.stdout
    checkpoint = tmp_path / "runs" / "tiny" / "train" / "best.pt"
    # For CI: stdout is one JSON document even while NNCF calibrates (it logs to stdout by default).
    again = runner.invoke(app, ["build", str(recipe), "--runs", "runs", "--json", "--force", "export"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert [(s["name"], s["cached"]) for s in summary["stages"]] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("export-onnx-fp32", False),
        ("export-onnx-int8", False),
        ("bench", False),
        ("report", False),
    ]

    result = runner.invoke(app, ["eval", str(checkpoint), "--json", "m.json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"miou", "pixel_accuracy", "mean_dice", "per_class_iou"} <= set(metrics)
    assert 0 <= metrics["miou"] <= 100 and set(metrics["per_class_iou"]) >= {"sky", "road", "car"}
    assert "mean" in result.output and "pixel accuracy" in result.output

    image = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    result = runner.invoke(app, ["predict", str(checkpoint), str(image), "--out", "pred"])
    assert result.exit_code == 0, result.output
    overlay = Image.open(tmp_path / "pred" / "street_overlay.png")
    classes = Image.open(tmp_path / "pred" / "street_classes.png")
    assert overlay.size == (70, 50) and overlay.mode == "RGB"
    assert classes.mode == "P" and np.array(classes).max() < 8


def test_build_rejects_an_unknown_force_stage(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict()))
    result = runner.invoke(app, ["build", str(recipe), "--force", "trian"])
    assert result.exit_code == 2
    assert "--force trian: unknown stage (did you mean 'train'?)" in result.stderr


def test_eval_overrides_the_data_root(tmp_path, tiny_recipe):
    from edgeseg.errors import DataError
    from edgeseg.eval import evaluate_checkpoint
    from edgeseg.train.loop import fit

    result = fit(tiny_recipe(train={"epochs": 1}), tmp_path, show_progress=False)
    with pytest.raises(DataError, match="nowhere: data.root does not exist"):
        evaluate_checkpoint(
            result.best,
            "val",
            ["data.dataset=folder", f"data.root={tmp_path / 'nowhere'}", "data.class_names=[a,b,c,d,e,f,g,h]"],
        )


@pytest.mark.slow
def test_a_full_disk_during_export_publishes_nothing_and_says_so(tmp_path, tiny_recipe, monkeypatch):
    import errno

    from edgeseg.errors import StorageError
    from edgeseg.exporters import onnx_export

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    recipe = tiny_recipe(train={"epochs": 1})
    monkeypatch.setattr(onnx_export, "embed_metadata", full_disk)
    with pytest.raises(
        StorageError,
        match=r"model.onnx: No space left on device while stage 'export-onnx-fp32' was writing; nothing was published",
    ) as info:
        build(recipe, tmp_path)
    assert info.value.exit_code == 9
    run = tmp_path / "tiny"
    assert (run / "train" / "stage.json").is_file() and not (run / "export-onnx-fp32").exists()
    monkeypatch.undo()
    again = build(recipe, tmp_path)  # space is back: the finished stages are reused, the export runs
    assert [(s.name, s.cached) for s in again][:4] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("export-onnx-fp32", False),
    ]


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import torch

    from edgeseg.errors import StorageError
    from edgeseg.models.checkpoint import save_atomic

    target = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, target)

    def full_disk(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(
        StorageError, match="last.pt: cannot write checkpoint .No space left on device.; the previous file is intact"
    ):
        save_atomic({"epoch": 2}, target)
    monkeypatch.undo()
    assert torch.load(target)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_runtime_that_crashes_on_the_artifact_fails_the_export_and_publishes_nothing(
    tmp_path, tiny_recipe, monkeypatch
):
    from edgeseg.errors import ExportError
    from edgeseg.runtimes.onnxruntime_rt import OnnxRuntimeSession

    def crash(self, batch):
        raise RuntimeError(
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node"
        )

    monkeypatch.setattr(OnnxRuntimeSession, "run", crash)
    with pytest.raises(
        ExportError, match=r"model.onnx: running the artifact failed \(RuntimeError: \[ONNXRuntimeError\]"
    ) as info:
        build(tiny_recipe(train={"epochs": 1}), tmp_path)
    assert info.value.exit_code == 8
    run = tmp_path / "tiny"
    assert (
        (run / "eval" / "stage.json").is_file()
        and not (run / "export-onnx-fp32").exists()
        and not (run / "bench").exists()
    )
