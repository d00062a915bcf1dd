"""Accuracy on scenes the model has not seen: overlap detection, group-disjoint folds, train+val,
per-split and per-group metrics, the leak gate, and the epoch schedule with a time cap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgeseg.data import load_split, load_training
from edgeseg.data.overlap import nearest_distances, perceptual_hashes, split_overlap, verdict
from edgeseg.data.samples import Samples
from edgeseg.data.splits import fold_groups, groups_of, selection_split, training_splits
from edgeseg.errors import DataError, GateError, RecipeError
from edgeseg.eval.metrics import confusion_matrix, per_group, summarize
from edgeseg.recipe import DataSpec, recipe_from_dict

from conftest import CAMVID, needs_camvid, tiny_recipe_dict

# Synthetic file names are "<split>_<5 digits>": groups of ten images, "0000", "0001", ...
SYNTHETIC_GROUPS = r"_(\d{4})\d$"


def smooth_image(seed: int, size=(96, 128)) -> np.ndarray:
    """A photo-like image: low-frequency structure, so its perceptual hash means something."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.array(Image.fromarray(coarse).resize(size[::-1], Image.BICUBIC))


def samples_of(images: list[np.ndarray], names: list[str]) -> Samples:
    return Samples(images, [np.zeros(i.shape[:2], np.uint8) for i in images], names)


# --- near-duplicates and shared groups ---------------------------------------------------------


def test_near_duplicates_are_flagged_and_distinct_images_are_not():
    train = [smooth_image(seed) for seed in range(20)]
    rng = np.random.default_rng(1)
    # the next frame of a video: a little brighter, a little sensor noise, shifted by a pixel
    near = [np.clip(np.roll(img, 1, axis=1) * 1.05 + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
            for img in train[:6]]  # fmt: skip
    new = [smooth_image(seed) for seed in range(100, 106)]
    held = samples_of(near + new, [f"n{i}" for i in range(12)])
    report = split_overlap(held, None, perceptual_hashes(train), None, threshold=8)
    assert report["near_duplicates"] == 6 and report["near_duplicate_fraction"] == 0.5
    assert report["groups"] is None and report["leaked_fraction"] == 0.5
    distances = nearest_distances(perceptual_hashes(near + new), perceptual_hashes(train))
    assert distances[:6].max() <= 8 < distances[6:].min()
    assert "50% are near-duplicates" in verdict("val", report)


def test_shared_groups_count_as_leaks_even_without_near_duplicates():
    train = [smooth_image(seed) for seed in range(8)]
    held = samples_of([smooth_image(seed) for seed in range(50, 54)], ["seqA_1", "seqA_2", "seqC_1", "seqC_2"])
    report = split_overlap(
        held, ["seqA", "seqA", "seqC", "seqC"], perceptual_hashes(train), ["seqA"] * 4 + ["seqB"] * 4, 8
    )
    assert report["near_duplicates"] == 0
    assert report["groups"]["shared"] == {"seqA": {"split": 2, "training": 4}}
    assert report["leaked_fraction"] == 0.5
    assert "(seqA)" in verdict("val", report) and "new ones" in verdict("val", report)


def test_group_names_come_from_the_pattern_and_a_mismatch_names_file_and_field():
    assert groups_of(["0016E5_07959", "Seq05VD_f00000"], r"^([^_]+)_", "camvid") == ["0016E5", "Seq05VD"]
    assert groups_of(["a", "b"], None, "x") is None
    with pytest.raises(DataError, match=r"val: file 'frame7' does not match data.group_pattern"):
        groups_of(["seq1_frame1", "frame7"], r"^(seq\d)_", "val")


@pytest.mark.parametrize("pattern", ["(", "no_group", "(a)(b)"])
def test_group_pattern_needs_one_capture_group(pattern):
    with pytest.raises(RecipeError, match=r"data.group_pattern"):
        recipe_from_dict(tiny_recipe_dict(data={"group_pattern": pattern}), "r.yaml")


# --- folds ---------------------------------------------------------------------------------------


def groups_spec(**validation) -> DataSpec:
    return DataSpec.model_validate(
        {"dataset": "synthetic", "group_pattern": SYNTHETIC_GROUPS, "synthetic": {"num_train": 60, "num_val": 10},
         "validation": validation}
    )  # fmt: skip


@pytest.mark.parametrize(
    "validation",
    [
        {"kind": "groups", "groups": ["0001", "0004"]},
        {"kind": "group_fraction", "fraction": 0.3},
        {"kind": "group_kfold", "folds": 3, "fold": 2},
    ],
)
def test_group_disjoint_fold_shares_no_group_with_training(validation):
    spec = groups_spec(**validation)
    train, fold = load_split(spec, "train", arrays=True), load_split(spec, "fold", arrays=True)
    train_groups = set(groups_of(train.names, SYNTHETIC_GROUPS, "train"))
    fold_groups_ = set(groups_of(fold.names, SYNTHETIC_GROUPS, "fold"))
    assert train_groups and fold_groups_ and not train_groups & fold_groups_
    assert sorted(train.names + fold.names) == [f"train_{i:05d}" for i in range(60)]
    assert selection_split(spec) == "fold"


def test_group_fraction_is_seeded_and_near_the_fraction():
    sizes = [g for g, n in zip("abcdefghij", (12, 10, 9, 8, 7, 6, 5, 4, 3, 2), strict=True) for _ in range(n)]
    spec = groups_spec(kind="group_fraction", fraction=0.25)
    folds = [fold_groups(spec, sizes, seed) for seed in range(8)]
    assert folds[0] == fold_groups(spec, sizes, 0)  # seeded
    assert len({frozenset(f) for f in folds}) > 1  # another seed, another fold
    for fold in folds:  # each group taken only when it brings the fold nearer 25% of 66 images
        assert abs(sum(sizes.count(g) for g in fold) - 16.5) <= 12 / 2
    assert fold_groups(groups_spec(kind="group_fraction", fraction=0.01), ["a"] * 9 + ["b"] * 9, 0)  # never empty
    assert len(fold_groups(groups_spec(kind="group_fraction", fraction=0.99), ["a"] * 9 + ["b"] * 9, 0)) == 1


def test_group_kfold_folds_partition_the_groups():
    groups = [g for g, n in zip("abcdefg", (9, 7, 6, 5, 3, 2, 1), strict=True) for _ in range(n)]
    folds = [fold_groups(groups_spec(kind="group_kfold", folds=3, fold=k), groups, 0) for k in range(3)]
    assert set().union(*folds) == set("abcdefg") and sum(map(len, folds)) == 7
    assert sorted(sum(groups.count(g) for g in f) for f in folds) == [11, 11, 11]  # balanced by images


def test_unknown_holdout_group_lists_the_known_ones():
    spec = groups_spec(kind="groups", groups=["0009"])
    with pytest.raises(DataError, match=r"data.validation.groups: '0009' is not a group.*did you mean '000[0-5]'"):
        load_split(spec, "fold")


def test_a_fold_needs_groups():
    spec = DataSpec.model_validate({"dataset": "synthetic", "validation": {"kind": "group_fraction"}})
    with pytest.raises(DataError, match=r"has no built-in groups; set data.group_pattern"):
        load_split(spec, "train")


def test_train_plus_val_fits_on_both_and_selects_on_the_fold():
    spec = groups_spec(kind="groups", groups=["0000"]).model_copy(update={"train_on": "train+val"})
    assert training_splits(spec) == ("train", "val") and selection_split(spec) == "fold"
    fitted = load_training(spec, arrays=True)
    assert len(fitted) == 50 + 10 and fitted.names[-1] == "val_00009"
    assert not {n for n in fitted.names if n.startswith("train_0000")}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"data": {"train_on": "train+val"}}, r"data.train_on: train\+val trains on the val split"),
        ({"eval": {"splits": ["fold"]}}, r"eval.splits: 'fold' is the fold data.validation carves"),
        (
            {"data": {"train_on": "train+val", "validation": {"kind": "group_fraction"}}, "eval": {"splits": ["val"]}},
            r"eval.splits: 'val' is trained on",
        ),
        ({"eval": {"splits": ["val", "val"]}}, r"eval.splits: lists a split more than once"),
        ({"data": {"validation": {"kind": "groups"}}}, r"kind 'groups' needs data.validation.groups"),
        ({"data": {"validation": {"kind": "group_kfold", "folds": 3, "fold": 3}}}, r"fold 3 does not exist"),
    ],
)
def test_inconsistent_validation_settings_are_refused(sections, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(tiny_recipe_dict(**sections), "r.yaml")


# --- per-group metrics --------------------------------------------------------------------------


def test_per_group_metrics_add_up_to_the_split():
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 3, (8, 8)) for _ in range(6)]
    preds = [np.where(rng.random((8, 8)) < (0.9 if i < 3 else 0.3), m, (m + 1) % 3) for i, m in enumerate(masks)]
    cms = [confusion_matrix(p, m, 3) for p, m in zip(preds, masks, strict=True)]
    groups = ["day"] * 3 + ["dusk"] * 3
    out = per_group(cms, groups, ["a", "b", "c"])
    assert [out[g]["images"] for g in ("day", "dusk")] == [3, 3]
    assert out["day"]["miou"] > 70 > 40 > out["dusk"]["miou"]
    assert out["day"]["miou"] == summarize(sum(cms[:3]), ["a", "b", "c"])["miou"]


# --- the build: several splits, per-group scores, the gate -------------------------------------


@pytest.mark.slow
def test_build_scores_every_split_by_group_and_reports_the_leak(tmp_path):
    from edgeseg.build.pipeline import build

    recipe = recipe_from_dict(
        tiny_recipe_dict(
            data={"group_pattern": SYNTHETIC_GROUPS, "validation": {"kind": "groups", "groups": ["0001"]}},
            eval={"splits": ["fold", "val"]},
            train={"epochs": 1},
        )
    )
    results = {r.name: r for r in build(recipe, tmp_path)}
    data = json.loads((results["data"].root / "data.json").read_text())
    assert data["selection_split"] == "fold" and data["training_splits"] == ["train"]
    assert data["overlap"]["fold"]["leaked_fraction"] == 0 and data["overlap"]["fold"]["groups"]["shared"] == {}
    assert data["overlap"]["val"]["groups"]["shared"] == {"0000": {"split": 8, "training": 10}}
    assert data["splits"]["train"]["samples"] == 10 and data["splits"]["fold"]["samples"] == 6
    metrics = json.loads((results["eval"].root / "metrics.json").read_text())
    assert metrics["split"] == "fold" and set(metrics["splits"]) == {"fold", "val"}
    assert metrics["splits"]["fold"]["per_group"]["0001"]["images"] == 6
    bench = json.loads((results["bench"].root / "bench.json").read_text())["results"]
    assert all(r["accuracy"]["split"] == "fold" and set(r["accuracy"]["per_group"]) == {"0001"} for r in bench)
    import jsonschema

    from conftest import REPO

    schemas = REPO / "edgeseg" / "schemas"
    document = {"schema": "edgeseg.bench/1", "results": bench, "environment": bench[0]["environment"]}
    jsonschema.validate(document, json.loads((schemas / "bench.schema.json").read_text()))
    page = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    jsonschema.validate(page, json.loads((schemas / "metrics.schema.json").read_text()))
    front = page["generalisation"]["splits"]
    assert front["val"]["leaked_fraction"] == 1.0 and front["val"]["shared_groups"] == ["0000"]
    assert front["fold"]["per_group"]["0001"]["miou"] == metrics["splits"]["fold"]["per_group"]["0001"]["miou"]
    report = (tmp_path / "tiny" / "report.html").read_text()
    assert "Does the score hold on new scenes?" in report and "come from groups the model trains on (0000)" in report


def test_leak_gate_stops_the_build_before_training(tmp_path):
    from edgeseg.build.pipeline import build

    leaky = tiny_recipe_dict(data={"group_pattern": SYNTHETIC_GROUPS}, gates={"max_eval_overlap": 0.1})
    with pytest.raises(GateError, match=r"eval split 'val': 100.0% of it overlaps.*gates.max_eval_overlap 0.1") as err:
        build(recipe_from_dict(leaky), tmp_path)
    assert err.value.exit_code == 3
    assert (tmp_path / "tiny" / "data" / "data.json").is_file() and not (tmp_path / "tiny" / "train").exists()


# --- schedule and augmentation ------------------------------------------------------------------


def test_schedule_follows_epochs_and_the_time_budget_caps_it():
    import torch

    from edgeseg.recipe import TrainSpec
    from edgeseg.train.schedule import make_scheduler

    def lr_at(step: int, used: float | None) -> float:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        spec = TrainSpec(epochs=10, schedule="poly", poly_power=1.0, time_budget_min=5)
        sched = make_scheduler(opt, spec, 10, None if used is None else (lambda: used))
        return sched.lr_lambdas[0](step)

    assert lr_at(50, None) == pytest.approx(0.5)  # half the epochs
    assert lr_at(50, 0.2) == pytest.approx(0.5)  # a fast host: the epochs lead
    assert lr_at(50, 0.8) == pytest.approx(0.2)  # a slow host: the clock leads


def test_blur_softens_images_and_leaves_masks_sharp():
    import torch

    from edgeseg.data.transforms import train_transform
    from edgeseg.recipe import AugmentSpec

    image = torch.from_numpy(smooth_image(0, (64, 64))).permute(2, 0, 1).contiguous()
    image[:, ::2] = 0  # stripes: blur must change them
    mask = torch.randint(0, 3, (64, 64), dtype=torch.uint8)
    spec = AugmentSpec(scale=(1.0, 1.0), hflip=False, color_jitter=0, blur=1.0)
    transform = train_transform(spec, (64, 64), (64, 64))
    # sigma is drawn from 0.1-2 px: near 0.1 a uint8 image barely changes, so judge many draws
    torch.manual_seed(0)
    changed = []
    for _ in range(10):
        out_image, out_mask = transform(image, mask)
        assert torch.equal(out_mask, mask)
        changed.append(float((out_image != image).float().mean()))
    assert sum(c > 0.5 for c in changed) >= 7, changed


# --- real data ------------------------------------------------------------------------------------


@needs_camvid
@pytest.mark.slow
def test_camvid_val_shares_its_sequence_with_train_and_a_held_out_sequence_does_not():
    from edgeseg.data.check import check_overlap

    base = {"dataset": "camvid", "root": str(CAMVID)}
    val = check_overlap(DataSpec.model_validate(base), ["val"], 0)["val"]
    assert val["groups"]["shared"] == {"0016E5": {"split": 101, "training": 204}} and val["leaked_fraction"] == 1.0
    fold_spec = DataSpec.model_validate({**base, "validation": {"kind": "groups", "groups": ["0006R0"]}})
    fold = check_overlap(fold_spec, ["fold"], 0)["fold"]
    assert fold["images"] == 101 and fold["groups"]["shared"] == {} and fold["leaked_fraction"] == 0.0
