"""``edgeseg study transfer``: every arm and fraction is a cached build; the table, plots and page;
a rerun or a grown study reuses what was trained."""

from __future__ import annotations

import json
import os

import pytest

from edgeseg.errors import RecipeError, UnknownNameError
from edgeseg.experiments.study import ARMS, run_study, study_variants
from edgeseg.recipe import recipe_from_dict

from conftest import tiny_recipe_dict

GROUPS = r"_(\d{4})\d$"  # synthetic frames in groups of ten


def _recipe(**train):
    return recipe_from_dict(
        tiny_recipe_dict(
            data={
                "group_pattern": GROUPS,
                "validation": {"kind": "groups", "groups": ["0001"]},
                "synthetic": {"num_train": 30},
            },
            eval={"splits": ["fold"]},
            train={"epochs": 1, **train},
        )
    )


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_every_arm_is_a_valid_recipe_with_what_it_changes(arm):
    recipe = _recipe(epochs=3)
    (variant,) = study_variants(recipe, [arm], [0.5], 1, "r.yaml")
    train, model = variant.recipe.train, variant.recipe.model
    assert variant.name == f"{arm}-f0.5-s0" and variant.recipe.data.train_fraction == 0.5
    assert variant.recipe.export.targets == [] and variant.recipe.compress.steps == []
    expected = {
        "scratch": model.backbone_weights == "none" and train.backbone_lr_mult == 1.0,
        "frozen": train.freeze_backbone_epochs == 3,
        "partial": train.frozen_stages == 2,
        "full": train == recipe.train,
        "gradual": train.unfreeze_every_epochs == 1,
        "llrd": train.layer_lr_decay == 0.7,
    }
    assert expected[arm]


def test_study_variants_cross_arms_fractions_and_seeds_and_refuse_bad_input():
    variants = study_variants(_recipe(), ["scratch", "full"], [0.25, 1.0], 2, "r.yaml")
    assert [v.name for v in variants] == [
        "scratch-f0.25-s0", "scratch-f0.25-s1", "scratch-f1-s0", "scratch-f1-s1",
        "full-f0.25-s0", "full-f0.25-s1", "full-f1-s0", "full-f1-s1",
    ]  # fmt: skip
    assert {v.recipe.seed for v in variants} == {0, 1}
    with pytest.raises(UnknownNameError, match="did you mean 'scratch'"):
        study_variants(_recipe(), ["scrach"], [1.0], 1, "r.yaml")
    with pytest.raises(RecipeError, match="--fractions: 1.5 is not a fraction"):
        study_variants(_recipe(), ["full"], [1.5], 1, "r.yaml")


def test_seeds_can_be_counted_per_fraction():
    variants = study_variants(_recipe(), ["full"], [0.1, 0.25, 1.0], [1, 2, 1], "r.yaml")
    assert [v.name for v in variants] == ["full-f0.1-s0", "full-f0.25-s0", "full-f0.25-s1", "full-f1-s0"]
    with pytest.raises(RecipeError, match="one per fraction \\(3\\), not 2"):
        study_variants(_recipe(), ["full"], [0.1, 0.25, 1.0], [1, 2], "r.yaml")
    with pytest.raises(RecipeError, match="--seeds: at least 1"):
        study_variants(_recipe(), ["full"], [1.0], [0], "r.yaml")


@pytest.mark.slow
def test_a_study_trains_every_cell_writes_its_page_and_reuses_the_cache(tmp_path):
    recipe = _recipe()
    first = run_study(recipe, tmp_path, arms=["full"], fractions=[0.5, 1.0], seeds=1, source="r.yaml")
    assert [r["miou"] is not None for r in first["runs"]] == [True, True]
    full_run = tmp_path / "tiny" / "variants" / "full-f1-s0"
    before = os.stat(full_run / "train" / "best.pt")

    # the study grows by an arm: the arm already trained is a cache hit, the new one trains
    summary = run_study(recipe, tmp_path, arms=["scratch", "full"], fractions=[0.5, 1.0], seeds=1, source="r.yaml")
    after = os.stat(full_run / "train" / "best.pt")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    stages = json.loads((full_run / "manifest.json").read_text())["stages"]
    assert all(s["cached"] for s in stages)
    assert {(c["arm"], c["fraction"]) for c in summary["table"]} == {
        ("scratch", 0.5), ("scratch", 1.0), ("full", 0.5), ("full", 1.0)
    }  # fmt: skip
    # half the data is half the frames of the training groups (whole runs of each)
    data = json.loads((tmp_path / "tiny" / "variants" / "full-f0.5-s0" / "data" / "data.json").read_text())
    assert data["splits"]["train"]["samples"] == 10
    assert summary["split"] == "fold" and "no shared groups" in summary["split_note"]
    out = tmp_path / "tiny" / "study"
    assert json.loads((out / "study.json").read_text())["table"] == summary["table"]
    for name in ("by_fraction.png", "by_time.png", "study.md"):
        assert (out / name).stat().st_size > 0
    page = (out / "study.html").read_text()
    assert "id='study'" in page and "scratch: from scratch" in page and page.count("<img") == 2
    assert all(r["epochs"] == 1 and r["train_s"] > 0 for r in summary["runs"])


@pytest.mark.slow
def test_cli_study_transfer(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(_recipe().model_dump(mode="json")))
    runner = CliRunner()
    bad = runner.invoke(app, ["study", "transfer", str(path), "--fractions", "half"])
    assert bad.exit_code == 2 and "--fractions: 'half' is not a comma-separated list" in bad.output
    ran = runner.invoke(app, ["study", "transfer", str(path), "--arms", "frozen", "--runs", str(tmp_path / "runs")])
    assert ran.exit_code == 0, ran.output
    assert "done: 1 runs (0 failed)" in ran.output
