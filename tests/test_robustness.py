"""Robustness scoring: every corruption (seeded, shape- and dtype-preserving), retention, the gate,
the recipe and CLI options, and a build whose artifacts are scored on identical corrupted pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeseg.bench.robustness import corrupted_images, retention, summarise
from edgeseg.corruptions import CORRUPTION_NAMES, CORRUPTIONS, corrupt
from edgeseg.errors import GateError, RecipeError, UnknownNameError
from edgeseg.recipe import GatesSpec, recipe_from_dict
from edgeseg.select.gates import check_gates

from conftest import REPO, tiny_recipe_dict

pytest.importorskip("imagecorruptions")

# the draws these make depend on the seed; the others are fixed functions of the image
RANDOM = {"gaussian_noise", "shot_noise", "motion_blur", "fog"}


def scene(height: int = 40, width: int = 56) -> np.ndarray:
    """A photo-like image: smooth gradients and an edge, so blur, JPEG and noise all change it."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 64], axis=-1)
    image[:, width // 2 :] = 255 - image[:, width // 2 :]
    return image.astype(np.uint8)


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_each_corruption_is_seeded_and_keeps_shape_and_dtype(name):
    image = scene()
    state = np.random.get_state()
    first = corrupt(image, name, 3, seed=7)
    again = corrupt(image, name, 3, seed=7)
    other = corrupt(image, name, 3, seed=8)
    assert first.shape == image.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert np.array_equal(first, other) == (name not in RANDOM)
    assert not np.array_equal(first, image)
    # the caller's numpy generator is left as it was
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:2], state[1:2], strict=True))


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_a_higher_severity_moves_the_image_further(name):
    image = scene(64, 80)
    distance = [np.abs(corrupt(image, name, s, seed=0).astype(int) - image).mean() for s in (1, 5)]
    assert distance[1] > distance[0], distance


def test_the_table_names_its_families_and_unknown_names_get_a_suggestion():
    assert {c.family for c in CORRUPTIONS.values()} == {"noise", "blur", "weather", "digital"}
    with pytest.raises(UnknownNameError, match=r"did you mean 'motion_blur'"):
        corrupt(scene(), "motion_blur_", 1, seed=0)
    with pytest.raises(ValueError, match="severities 1 to 5"):
        corrupt(scene(), "fog", 6, seed=0)


def test_corrupted_copies_are_made_once_and_read_back(tmp_path, monkeypatch):
    images = [scene(), scene(48, 64)]
    first = corrupted_images(images, "gaussian_noise", 2, seed=0, cache=tmp_path)
    assert (tmp_path / "gaussian_noise-2.npz").is_file()
    import edgeseg.bench.robustness as robustness

    monkeypatch.setattr(robustness, "corrupt", lambda *a: pytest.fail("recomputed a cached corruption"))
    second = corrupted_images(images, "gaussian_noise", 2, seed=0, cache=tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert [img.shape for img in second] == [(40, 56, 3), (48, 64, 3)]


def test_retention_averages_severities_then_corruptions():
    rows = [
        {"corruption": "fog", "severity": 1, "miou": 40.0, "per_class_iou": {}},
        {"corruption": "fog", "severity": 3, "miou": 20.0, "per_class_iou": {}},
        {"corruption": "darkness", "severity": 1, "miou": 50.0, "per_class_iou": {}},
        {"corruption": "darkness", "severity": 3, "miou": None, "per_class_iou": {}},
    ]
    out = summarise(50.0, rows, images=4)
    assert out["corruptions"]["fog"]["miou"] == 30.0 and out["corruptions"]["fog"]["retention"] == 0.6
    assert out["corruptions"]["darkness"]["retention"] == 1.0  # an unscored severity is left out
    assert out["mean_miou"] == pytest.approx(110 / 3, abs=1e-4)
    assert out["retention"] == pytest.approx(110 / 3 / 50, abs=1e-4)
    assert out["corruptions"]["fog"]["by_severity"] == {"1": 40.0, "3": 20.0}
    assert retention(10.0, 0.0) is None and retention(None, 50.0) is None


def _result(name: str, retention_value: float | None) -> dict:
    robustness = None if retention_value is None else {"retention": retention_value}
    return {"name": name, "latency": [], "accuracy": {"miou": 50.0, "robustness": robustness}}


def test_the_retention_gate():
    gates = GatesSpec(min_retention=0.8)
    failures = check_gates(gates, [_result("int8", 0.7), _result("fp32", 0.85), _result("unscored", None)])
    assert failures["int8"] == [
        "retention under corruption (corrupted / clean mIoU) 0.7 is below the minimum 0.8 (gates.min_retention)"
    ]
    assert "fp32" not in failures
    assert failures["unscored"] == [
        "retention under corruption (corrupted / clean mIoU) was not measured (gates.min_retention 0.8)"
    ]


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"gates": {"min_retention": 0.8}}, r"gates.min_retention needs bench.robustness.enabled: true"),
        ({"bench": {"robustness": {"corruptions": ["fogg"]}}}, r"bench.robustness.corruptions.0.*fog"),
        ({"bench": {"robustness": {"severities": [0]}}}, r"bench.robustness.severities.0"),
        ({"bench": {"robustness": {"corruptions": ["fog", "fog"]}}}, r"lists an entry more than once"),
    ],
)
def test_robustness_settings_are_checked_by_the_recipe(sections, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(tiny_recipe_dict(**sections), "r.yaml")


@pytest.mark.slow
def test_cli_bench_robustness_options(tmp_path, checkpoint):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict()))
    runner = CliRunner()
    base = ["bench", str(checkpoint), "--recipe", str(recipe), "--robustness"]
    unknown = runner.invoke(app, [*base, "--corruption", "fogg"])
    assert unknown.exit_code == 2 and "did you mean 'fog'" in unknown.output
    bare = runner.invoke(app, ["bench", str(checkpoint), "--robustness"])
    assert bare.exit_code == 2 and "--robustness needs --recipe" in bare.output
    out = tmp_path / "bench.json"
    args = [*base, "--corruption", "pixelate"]
    ran = runner.invoke(app, [*args, "--severity", "2", "--max-images", "4", "--iterations", "2", "--json", str(out)])
    assert ran.exit_code == 0, ran.output
    rob = json.loads(out.read_text())["results"][0]["accuracy"]["robustness"]
    assert rob["images"] == 4 and list(rob["corruptions"]) == ["pixelate"]
    assert list(rob["corruptions"]["pixelate"]["by_severity"]) == ["2"]
    assert "robustness (4 images)" in ran.output


@pytest.mark.slow
def test_a_build_scores_every_artifact_on_the_same_corrupted_pixels_and_gates_retention(tmp_path):
    import jsonschema

    from edgeseg.build.pipeline import build

    robustness = {"enabled": True, "corruptions": ["gaussian_noise", "darkness"], "severities": [1, 5]}
    recipe = recipe_from_dict(
        tiny_recipe_dict(train={"epochs": 2}, bench={"robustness": robustness}, gates={"min_retention": 10.0})
    )
    with pytest.raises(GateError, match=r"gates.min_retention"):
        build(recipe, tmp_path)
    bench = json.loads((tmp_path / "tiny" / "bench" / "bench.json").read_text())["results"]
    torch_rob, onnx_rob = (r["accuracy"]["robustness"] for r in bench)
    assert torch_rob["images"] == 8 and set(torch_rob["corruptions"]) == {"gaussian_noise", "darkness"}
    # the fp32 ONNX model agrees with PyTorch pixel for pixel, so on the same pixels it scores the same
    for name in ("gaussian_noise", "darkness"):
        for severity in ("1", "5"):
            a, b = (rob["corruptions"][name]["by_severity"][severity] for rob in (torch_rob, onnx_rob))
            assert a == pytest.approx(b, abs=0.5)
    schemas = REPO / "edgeseg" / "schemas"
    document = {"schema": "edgeseg.bench/1", "results": bench, "environment": bench[0]["environment"]}
    jsonschema.validate(document, json.loads((schemas / "bench.schema.json").read_text()))
    page = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    jsonschema.validate(page, json.loads((schemas / "metrics.schema.json").read_text()))
    row = next(r for r in page["artifacts"] if r["role"] != "reference")
    assert row["robustness"]["retention"] == onnx_rob["retention"] and row["rejected"]
    report = (tmp_path / "tiny" / "report.html").read_text()
    assert "Robustness to camera corruptions" in report and "id='robustness'" in report and "hsl(" in report
