"""Frame to class map (issue 34, part 2): the deployment kit's path timed stage by stage, videos
and cameras in and out through PyAV, ``edgeseg predict`` on bundles and videos, and
``bench --end-to-end`` / ``bench.end_to_end`` in bench.json and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.predict import kit
from edgeseg.recipe import ExportTarget, recipe_from_dict

from conftest import KIT, REPO, run_kit_without_torch, tiny_recipe_dict

av = pytest.importorskip("av")  # in edgeseg[bench] and edgeseg[all]

FRAME_STAGES = ["resize", "normalise", "infer", "argmax", "upsample", "colour"]


@pytest.fixture(scope="module")
def bundle(checkpoint, tmp_path_factory):
    from edgeseg.exporters import export_checkpoint

    out = tmp_path_factory.mktemp("e2e") / "bundle"
    export_checkpoint(checkpoint, recipe_from_dict(tiny_recipe_dict()), ExportTarget(format="onnx"), out)
    return out


def street(height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """A synthetic scene of the tiny model's kind: flat regions and edges, not noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2] = rng.integers(100, 200, 3)
    image[height // 2 :] = rng.integers(0, 100, 3)
    x = int(rng.integers(5, width - 20))
    image[height // 3 :, x : x + 15] = rng.integers(0, 256, 3)
    return image


def write_clip(path, frames: int = 12, height: int = 64, width: int = 80) -> list[np.ndarray]:
    """An H.264 clip; returns the frames as a decoder gives them back (what the kit sees)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(street(height, width, i), format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def decoded(path, fmt: str) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format=fmt) for frame in container.decode(video=0)]


def test_edgeseg_runs_the_kit_file_that_apps_copy():
    assert (REPO / "edgeseg" / "predict" / "kit.py").resolve() == KIT.resolve()


def test_every_stage_is_timed_and_the_class_map_is_the_runtimes_argmax(bundle):
    segmenter = kit.Segmenter(bundle)
    image = street(64 * 2, 80 * 2)  # twice the input size: resize and upsample both do work
    frame = segmenter.segment(image)
    assert list(frame.ms) == FRAME_STAGES and all(ms >= 0 for ms in frame.ms.values())
    logits = segmenter._run(segmenter._tensor(segmenter._resize(image)))[0]
    expected = np.asarray(kit.Image.fromarray(logits.argmax(0).astype(np.uint8)).resize((160, 128), 0))
    assert frame.classes.shape == image.shape[:2] and (frame.classes == expected).all()
    assert frame.overlay.size == (160, 128)
    assert segmenter.segment(image, alpha=None).overlay is None


def test_the_one_pass_normalisation_is_the_formula_in_model_json(bundle):
    segmenter = kit.Segmenter(bundle)
    image = street(seed=3)
    pre = segmenter.meta["input"]["preprocessing"]
    mean, std = np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)
    formula = (image.astype(np.float32) / 255 - mean) / std
    np.testing.assert_allclose(segmenter._tensor(image)[0], formula.transpose(2, 0, 1), atol=1e-5)


def test_an_int8_input_goes_through_the_table_as_through_the_formula(bundle):
    segmenter = kit.Segmenter(bundle)
    segmenter.meta["input"]["quantization"] = {"scale": 0.0187, "zero_point": -3}
    segmenter._prepare_input()
    image = street(seed=4)
    pre, q = segmenter.meta["input"]["preprocessing"], segmenter.meta["input"]["quantization"]
    x = (image.astype(np.float32) / 255 - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    want = np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8).transpose(2, 0, 1)
    got = segmenter._tensor(image)[0]
    assert got.dtype == np.int8 and np.abs(got.astype(int) - want).max() <= 1  # float rounding at .5 only


def test_argmax_ids_picks_the_first_maximum_as_numpy_does():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (11, 30, 40)).astype(np.float32)  # many ties
    assert (kit.argmax_ids(logits) == logits.argmax(0)).all()


@pytest.mark.parametrize("size", [(64, 80), (63, 81)], ids=["even", "odd"])
def test_a_video_gives_an_overlay_video_and_a_lossless_class_id_stream(bundle, tmp_path, size):
    frames = write_clip(tmp_path / "drive.mp4", 12, *size)
    segmenter = kit.Segmenter(bundle)
    summary = kit.segment_video(segmenter, str(tmp_path / "drive.mp4"), tmp_path)
    assert summary["frames"] == 12 and list(summary["stages"]) == ["decode", *FRAME_STAGES, "encode"]
    assert summary["fps"] > 0 and summary["wall_fps"] > 0
    assert summary["total"]["p50_ms"] >= max(v["p50_ms"] for v in summary["stages"].values())
    classes = decoded(tmp_path / "drive_classes.mkv", "gray")
    assert len(classes) == 12
    for frame, ids in zip(frames, classes, strict=True):  # FFV1 keeps every id
        assert (ids == segmenter.segment(frame, alpha=None).classes).all()
    overlay = decoded(tmp_path / "drive_overlay.mp4", "rgb24")
    assert len(overlay) == 12 and overlay[0].shape == (*size, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mp4", "drive_classes.mkv", "drive_overlay.mp4"]


def test_edgeseg_predict_takes_a_bundle_or_a_checkpoint_and_videos_or_images(bundle, checkpoint, tmp_path):
    write_clip(tmp_path / "drive.mp4", 6)
    kit.Image.fromarray(street()).save(tmp_path / "street.jpg")
    for model, out in ((bundle, tmp_path / "by-bundle"), (checkpoint, tmp_path / "by-checkpoint")):
        args = ["predict", str(model), str(tmp_path / "drive.mp4"), str(tmp_path / "street.jpg"), "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == [
            "drive_classes.mkv", "drive_overlay.mp4", "street_classes.png", "street_overlay.png",
        ]  # fmt: skip
        assert "drive.mp4: 6 frames, decode" in result.output and "1 images: decode" in result.output
        assert len(decoded(out / "drive_classes.mkv", "gray")) == 6


def test_a_file_that_is_not_video_is_refused_in_one_line_and_leaves_nothing(bundle, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    args = ["predict", str(bundle), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 10, result.output
    assert f"{tmp_path / 'broken.mp4'}" in result.output and "not a video FFmpeg can decode" in result.output
    assert not (tmp_path / "o").exists()  # no folder, no half-written .part files
    missing = CliRunner().invoke(app, ["predict", str(bundle), str(tmp_path / "gone.mp4")])
    assert missing.exit_code == 2 and "gone.mp4: no such file" in missing.output
    camera = CliRunner().invoke(app, ["predict", str(bundle), "97", "--out", str(tmp_path / "c")])
    assert camera.exit_code == 10 and "camera 97: no such capture device" in camera.output


def test_the_kit_runs_a_video_without_torch_or_edgeseg(bundle, tmp_path):
    write_clip(tmp_path / "drive.mp4", 4)
    result = run_kit_without_torch(bundle, [tmp_path / "drive.mp4"], tmp_path / "out")
    assert result.stdout.strip().endswith("drive_overlay.mp4")
    assert "drive.mp4: 4 frames, decode" in result.stderr and "ms p50" in result.stderr
    assert len(decoded(tmp_path / "out" / "drive_classes.mkv", "gray")) == 4


def test_bench_end_to_end_times_each_stage_beside_model_only(bundle, tmp_path):
    import jsonschema
    import yaml

    from edgeseg.report.render import _end_to_end_table, artifact_rows

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_dict()))
    args = ["bench", str(bundle), "--recipe", str(recipe), "--end-to-end", "--frame-encoding", "png"]
    args += ["--iterations", "4", "--rounds", "1", "--json", str(tmp_path / "b.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "b.json").read_text())
    schema = json.loads((REPO / "edgeseg" / "schemas" / "bench.schema.json").read_text())
    jsonschema.validate(document, schema)
    section = document["results"][0]["end_to_end"]
    assert section["encoding"] == "png" and section["images"] == 8 and section["frames"] == 30
    assert list(section["stages"]) == ["decode", *FRAME_STAGES]
    model_only = document["results"][0]["latency"][0]["p50_ms"]
    assert section["model_only_p50_ms"] == model_only
    assert section["ratio_p50"] == pytest.approx(section["total"]["p50_ms"] / model_only, abs=1e-3)
    assert "frame to class map (png files, 30 frames)" in result.output
    floor = document["results"][0]["floor"]  # every CPU result is held to its compute floor
    assert floor["peak"] == "fp32" and floor["gmacs"] == document["results"][0]["model"]["gmacs"]
    assert floor["compute_floor_ms"] == pytest.approx(floor["gmacs"] / floor["peak_gmacs_per_s"] * 1e3, rel=1e-3)
    assert floor["p50_over_floor"] == pytest.approx(model_only / floor["compute_floor_ms"], abs=0.01)
    assert "compute floor" in result.output
    head, body = _end_to_end_table(artifact_rows(document["results"]))
    assert head[:3] == ["artifact", "files", "model-only p50"] and body[0][1] == "png"
    assert head[3:10] == ["decode", *FRAME_STAGES]  # in the frame's order (kit.STAGES)


def test_end_to_end_needs_the_recipes_images(bundle, tmp_path):
    result = CliRunner().invoke(app, ["bench", str(bundle), "--end-to-end"])
    assert result.exit_code == 2 and "--end-to-end needs --recipe" in result.output
    unknown = CliRunner().invoke(app, ["bench", str(bundle), "--frame-encoding", "webp"])
    assert unknown.exit_code == 2 and "jpeg" in unknown.output
    with pytest.raises(Exception, match=r"bench\.end_to_end: its frames are the evaluation images"):
        recipe_from_dict(tiny_recipe_dict(bench={"end_to_end": True, "accuracy": False}))


def test_a_bundle_with_output_stride_2_gives_ids_at_half_size_that_apps_upsample(checkpoint, tmp_path):
    """export.output_stride: the graph's logits at 1/2 of the input; the kit, bench and the
    proof take ids there and upsample the ids (nearest) to the frame."""
    import torch
    import torch.nn.functional as F

    from edgeseg.exporters import export_checkpoint
    from edgeseg.models.checkpoint import load_model

    recipe = recipe_from_dict(tiny_recipe_dict(export={"output_stride": 2}))
    meta = export_checkpoint(checkpoint, recipe, ExportTarget(format="onnx"), tmp_path / "bundle")
    assert meta["output"]["shape"][2:] == [32, 40] and meta["output"]["stride"] == 2
    assert meta["verification"]["passed"]
    segmenter = kit.Segmenter(tmp_path / "bundle")
    image = street(seed=5)
    frame = segmenter.segment(image)
    assert frame.classes.shape == (64, 80)
    loaded = load_model(checkpoint)
    with torch.no_grad():  # stride-8 logits resized to half size, argmax, ids doubled
        x = torch.from_numpy(segmenter._tensor(image).copy())
        low = loaded.model.classifier(loaded.model.backbone(x))
        ids = F.interpolate(low, size=(32, 40), mode="bilinear", align_corners=False).argmax(1, keepdim=True)
        want = F.interpolate(ids.float(), size=(64, 80), mode="nearest")[0, 0].numpy()
    assert (frame.classes == want).mean() > 0.99
    assert loaded.model.output_stride == 1  # the export set it on its own copy
