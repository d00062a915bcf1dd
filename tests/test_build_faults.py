"""`edgeseg build` under bad input and injected faults: a clear message, a distinct exit code, and
no stage directory that a later build would trust.

Exit codes: 2 recipe, 3 gates, 4 dataset not found, 5 weights, 6 checkpoint, 7 missing runtime
or device, 8 export, 9 disk full, 10 corrupt sample. (Disk full and a crashing runtime are in
test_pipeline.py, gates in test_bench.py, recipe errors in test_recipe.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgeseg.build import pipeline
from edgeseg.build.pipeline import build
from edgeseg.build.stages import STAGES as STAGES_TABLE
from edgeseg.errors import CorruptDataError, DataError, DependencyError
from edgeseg.recipe import recipe_from_dict

from conftest import REPO, tiny_recipe_dict

CLASSES = ["sky", "road", "car"]


def folder_dataset(root, n_train: int = 8, n_val: int = 4, size=(64, 80)):
    """A user's own folder dataset of noise images with random index masks."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{i:03d}.png"
            )
            Image.fromarray(rng.integers(0, len(CLASSES), size, dtype=np.uint8)).save(
                root / split / "masks" / f"{i:03d}.png"
            )
    return root


def folder_recipe(root, **data):
    data = {"dataset": "folder", "root": str(root), "class_names": CLASSES, **data}
    return recipe_from_dict(tiny_recipe_dict(data=data, train={"epochs": 1}))


def published(run_dir) -> list[str]:
    """What a later build could pick up: stage directories and leftovers, hidden ones included."""
    return sorted(p.name for p in run_dir.iterdir() if p.is_dir()) if run_dir.exists() else []


def cli_build(recipe_dict: dict, tmp_path) -> subprocess.CompletedProcess:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps(recipe_dict))
    return subprocess.run(
        [sys.executable, "-m", "edgeseg", "build", str(recipe), "--runs", str(tmp_path / "runs"), "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_a_missing_dataset_stops_the_build_before_anything_is_written(tmp_path):
    data = {"dataset": "folder", "root": str(tmp_path / "nowhere"), "class_names": CLASSES}
    done = cli_build(tiny_recipe_dict(data=data), tmp_path)
    assert done.returncode == 4, done.stderr
    assert f"{tmp_path / 'nowhere'}: data.root does not exist" in done.stderr and "Traceback" not in done.stderr
    assert published(tmp_path / "runs" / "tiny") == []  # only the resolved recipe.yaml


@pytest.mark.parametrize("part", ["images", "masks"])
def test_a_corrupt_image_or_mask_stops_the_build_naming_the_file(tmp_path, part):
    root = folder_dataset(tmp_path / "ds")
    broken = root / "val" / part / "002.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    with pytest.raises(
        CorruptDataError, match=rf"{broken}: cannot read {'image' if part == 'images' else 'mask'}"
    ) as info:
        build(folder_recipe(root), tmp_path / "runs")
    assert info.value.exit_code == 10 and isinstance(info.value, DataError)
    assert published(tmp_path / "runs" / "tiny") == []


@pytest.mark.slow
def test_a_corrupt_sample_exits_10_from_the_command_line(tmp_path):
    root = folder_dataset(tmp_path / "ds")
    Image.fromarray(np.full((64, 80), 7, dtype=np.uint8)).save(root / "train" / "masks" / "001.png")  # class 7 of 3
    done = cli_build(tiny_recipe_dict(data={"dataset": "folder", "root": str(root), "class_names": CLASSES}), tmp_path)
    assert done.returncode == 10, done.stderr
    assert "train/masks/001.png: label values [7] are outside [0, 3)" in done.stderr
    assert published(tmp_path / "runs" / "tiny") == []


def test_skipping_bad_samples_is_reported_by_the_data_stage(tmp_path):
    from edgeseg.data.check import check_data

    root = folder_dataset(tmp_path / "ds")
    (root / "train" / "images" / "003.png").write_bytes(b"not an image")
    recipe = folder_recipe(root, on_bad_sample="skip")
    report = check_data(recipe.data, ["train", "val"], seed=0)
    train = report["splits"]["train"]
    assert train["samples"] == 7 and len(train["skipped"]) == 1 and "003.png: cannot read image" in train["skipped"][0]
    assert set(train["class_pixel_fraction"]) == set(CLASSES) and train["absent_classes"] == []


@pytest.mark.slow
def test_the_data_stage_reruns_on_touched_files_and_training_only_on_changed_pixels(tmp_path):
    root = folder_dataset(tmp_path / "ds")
    recipe = folder_recipe(root)
    build(recipe, tmp_path / "runs")
    image = root / "train" / "images" / "000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # touched, same pixels
    touched = build(recipe, tmp_path / "runs")
    assert [(s.name, s.cached) for s in touched][:3] == [("data", False), ("train", True), ("eval", True)]
    pixels = np.array(Image.open(image))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(image)
    changed = build(recipe, tmp_path / "runs")
    assert [(s.name, s.cached) for s in changed][:3] == [("data", False), ("train", False), ("eval", False)]


STAGES = ["data", "train", "eval", "compress", "export-onnx-fp32", "export-onnx-int8", "bench", "report"]


@pytest.mark.slow
def test_an_injected_failure_in_any_stage_keeps_the_previous_stage_and_publishes_nothing(tmp_path, monkeypatch):
    """Each stage in turn fails after writing part of its files (an exception, or Ctrl-C for
    every other stage): the complete stage of the previous build stays as it was, no half-written
    file is left where a build would look, and the manifest still describes the previous build."""
    export = {
        "targets": [{"format": "onnx"}, {"format": "onnx", "precision": "int8"}],
        "calibration": {"num_samples": 8},
        "verify": {"min_agreement_int8": 0.85},
    }
    recipe = recipe_from_dict(
        tiny_recipe_dict(
            train={"epochs": 1}, compress={"steps": [{"kind": "ptq", "calibration_samples": 8}]}, export=export
        )
    )
    first = build(recipe, tmp_path)
    assert [s.name for s in first] == STAGES
    run = tmp_path / "tiny"
    manifest = (run / "manifest.json").read_text()
    real_run_stage = pipeline.run_stage

    for i, target in enumerate(STAGES):
        failure = KeyboardInterrupt if i % 2 else RuntimeError

        def failing(run_dir, name, work, target=target, failure=failure, **kw):
            if name == target:

                def work(out):
                    (out / "half-written.bin").write_bytes(b"\0" * 4096)
                    raise failure(f"injected failure in {name}")

            return real_run_stage(run_dir, name, work, **kw)

        monkeypatch.setattr(pipeline, "run_stage", failing)
        with pytest.raises(failure, match=f"injected failure in {target}"):
            build(recipe, tmp_path, force=(target,))
        monkeypatch.undo()
        stage = json.loads((run / target / "stage.json").read_text())
        assert stage["outputs"] == next(s.outputs for s in first if s.name == target), target
        leftovers = [p.relative_to(run).as_posix() for p in run.rglob("half-written.bin")]
        # Resumable stages alone (training, compression) keep their scratch directory (epoch and
        # step checkpoints to resume from); it is never published as it is, only resumed by a
        # build with the same key, and the next build that finds the stage cached removes it.
        resumable = {f".{stage.name}.partial" for stage in STAGES_TABLE if stage.resumable}
        kept = f".{target}.partial"
        assert leftovers == ([f"{kept}/half-written.bin"] if kept in resumable else []), target
        assert [p.name for p in run.glob(".*") if p.name not in resumable] == [], target
        assert (run / "manifest.json").read_text() == manifest, target


def test_a_tensorrt_target_without_a_gpu_fails_before_any_stage(tmp_path):
    from edgeseg.runtimes.tensorrt_rt import gpu_facts

    try:
        gpu_facts()
        pytest.skip("this machine can build TensorRT engines")
    except DependencyError:
        pass
    targets = [{"format": "onnx"}, {"format": "tensorrt", "precision": "int8"}]
    with pytest.raises(
        DependencyError,
        match=r"export.targets\[1\] \(tensorrt-int8\) cannot be built on this machine: "
        r".*(tensorrt|cuda-python|NVIDIA GPU)",
    ) as info:
        build(recipe_from_dict(tiny_recipe_dict(export={"targets": targets})), tmp_path)
    assert info.value.exit_code == 7
    assert published(tmp_path / "tiny") == []


def test_a_runtime_that_is_not_installed_fails_before_any_stage(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    targets = [{"format": "openvino", "precision": "fp16"}]
    with pytest.raises(
        DependencyError,
        match=r"export.targets\[0\] \(openvino-fp16\) cannot be built on this machine: "
        r"openvino is not installed .*pip install openvino",
    ):
        build(recipe_from_dict(tiny_recipe_dict(export={"targets": targets})), tmp_path)
    assert published(tmp_path / "tiny") == []
