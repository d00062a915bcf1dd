"""Self-training on unlabelled images: per-class thresholds, ignored low-confidence pixels, the EMA
teacher, and the adapt stage in a build (cached, and adding it retrains nothing before it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgeseg.data.samples import IGNORE
from edgeseg.errors import DataError
from edgeseg.recipe import recipe_from_dict
from edgeseg.train.selftrain import class_shift, class_thresholds, load_unlabeled, pseudo_label, repeats_for_share

from conftest import tiny_recipe_dict


def test_each_class_gets_its_own_threshold_under_the_cap():
    # class 0: confident everywhere (capped at 0.9); class 1: unsure, its median is its threshold
    confidence = torch.tensor([0.99, 0.95, 0.97, 0.93, 0.30, 0.40, 0.50, 0.60])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    thresholds = class_thresholds(confidence, labels, 3, cap=0.9, quantile=0.5)
    assert thresholds[0] == pytest.approx(0.9)
    assert thresholds[1] == pytest.approx(0.45)
    assert thresholds[2] == pytest.approx(0.9)  # never predicted: the cap


class FixedTeacher(torch.nn.Module):
    """Logits that make the left half class 0 (sure) and the right half class 1 (unsure)."""

    def forward(self, x):
        n, _, h, w = x.shape
        logits = torch.zeros(n, 3, h, w)
        logits[:, 0, :, : w // 2] = 8.0
        ramp = torch.linspace(0.5, 2.0, w - w // 2)  # growing confidence to the right (0.45 to 0.79)
        logits[:, 1, :, w // 2 :] = ramp
        return logits


def test_pseudo_labels_ignore_pixels_below_their_class_threshold():
    recipe = recipe_from_dict(tiny_recipe_dict(adapt={"confidence": 0.9, "class_quantile": 0.5}))
    images = [torch.zeros(3, 32, 40, dtype=torch.uint8)]
    masks, stats = pseudo_label(FixedTeacher(), images, recipe, 3)
    mask = masks[0]
    assert mask.dtype == torch.uint8 and mask.shape == (32, 40)
    assert (mask[:, :20] == 0).all()  # confident class 0 kept everywhere
    right = mask[:, 20:]
    assert (right[:, :10] == IGNORE).all() and (right[:, 10:] == 1).all()  # class 1 keeps its surer half
    assert stats["kept_fraction"] == pytest.approx(0.75)
    assert stats["kept_per_class"][:2] == [640, 320] and stats["predicted_per_class"][:2] == [640, 640]


def test_unlabeled_folders_are_checked(tmp_path):
    with pytest.raises(DataError, match="data.unlabeled is not a directory"):
        load_unlabeled(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="data.unlabeled holds no images"):
        load_unlabeled(str(tmp_path / "empty"))


def _unlabeled_folder(tmp_path, count: int = 8):
    """Synthetic scenes at dusk (darkened), as PNG files without masks."""
    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    spec = DataSpec(dataset="synthetic", synthetic={"num_train": count, "num_val": 2, "height": 64, "width": 80})
    folder = tmp_path / "dusk"
    folder.mkdir()
    for i, image in enumerate(load_split(spec, "train", seed=5, arrays=True).images):
        Image.fromarray((image * 0.45).astype(np.uint8)).save(folder / f"frame_{i:03d}.png")
    return folder


@pytest.mark.slow
def test_the_adapt_stage_self_trains_with_an_ema_teacher_and_feeds_eval(tmp_path):
    from edgeseg.build.pipeline import build
    from edgeseg.eval.evaluate import evaluate_checkpoint
    from edgeseg.models.checkpoint import read_checkpoint

    base = tiny_recipe_dict(train={"epochs": 2})
    first = {r.name: r for r in build(recipe_from_dict(base), tmp_path)}
    adapted = tiny_recipe_dict(
        train={"epochs": 2},
        data={"unlabeled": str(_unlabeled_folder(tmp_path))},
        # every round trains and the last student ships, whatever a tiny model's class mix does
        adapt={"rounds": 2, "epochs": 1, "ema_decay": 0.9, "stop_on_drift": False},
    )
    second = {r.name: r for r in build(recipe_from_dict(adapted), tmp_path)}
    assert second["data"].cached and second["train"].cached  # adding unlabelled images retrains nothing
    assert first["train"].key == second["train"].key and not second["adapt"].cached
    report = json.loads((second["adapt"].root / "adapt.json").read_text())
    assert report["images"] == 8 and [r["round"] for r in report["rounds"]] == [1, 2]
    assert all(0 < r["kept_fraction"] <= 1 and len(r["thresholds"]) == 8 for r in report["rounds"])
    assert all(0 <= r["class_shift"] <= 1 for r in report["rounds"])
    # the fine-tuned model's, each round's teacher's, then the last student's own labelling pass
    assert len(report["class_shifts"]) == 3 and report["class_shifts"][:2] == [
        r["class_shift"] for r in report["rounds"]
    ]
    assert report["shipped"] == "round-2" and (second["adapt"].root / "last-student" / "labels.json").is_file()
    info = second["adapt"].record["info"]
    assert info["class_shifts"] == report["class_shifts"] and info["val_miou"] == report["shipped_val_miou"]
    last = read_checkpoint(second["adapt"].root / "round-2" / "last.pt")
    best = read_checkpoint(second["adapt"].root / "best.pt")
    averaged = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    assert all(torch.equal(best["model"][k], averaged[k]) for k in averaged)  # the EMA teacher is deployed
    metrics = json.loads((second["eval"].root / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(evaluate_checkpoint(second["adapt"].root / "best.pt", "val")["miou"])
    third = {r.name: r for r in build(recipe_from_dict(adapted), tmp_path)}
    assert third["adapt"].cached and third["eval"].cached


def test_class_shift_is_the_total_variation_between_class_mixes():
    assert class_shift([50, 50, 0], [0.5, 0.5, 0.0]) == 0.0
    assert class_shift([0, 0, 10], [0.5, 0.5, 0.0]) == 1.0
    assert class_shift([30, 10, 0], [1.0, 1.0, 0.0]) == 0.25  # labelled shares need not sum to 1


def test_a_drifting_class_mix_is_reported(caplog):
    from edgeseg.train.selftrain import _warn_on_drift

    with caplog.at_level("WARNING", logger="edgeseg.adapt"):
        _warn_on_drift([0.19, 0.16], 1)  # CamVid dusk: no warning
        assert not caplog.records
        _warn_on_drift([0.36, 0.42], 1)  # the failed noise shift
        _warn_on_drift([0.36, 0.42], 0)
    assert "class shift 0.36 -> 0.42" in caplog.text
    assert "the last student ships" in caplog.records[0].message
    assert "adapt.stop_on_drift: shipping the fine-tuned model" in caplog.records[1].message


@pytest.mark.parametrize(
    "shifts, stop, shipped",
    [
        ([0.19, 0.16, 0.17], True, 2),  # dusk: nothing drifted, the last student ships
        ([0.36, 0.42], True, 0),  # the failed noise shift: the first student drifted
        ([0.20, 0.21, 0.30], True, 1),  # the second student drifted: the first ships
        ([0.20, 0.30, 0.21], True, 0),  # a drift that comes back still stopped the rounds there
        ([0.36, 0.42], False, 1),  # without stop_on_drift the last student ships, drifted or not
    ],
)
def test_stop_on_drift_ships_the_last_model_before_the_drift(shifts, stop, shipped):
    from edgeseg.train.selftrain import _shipped

    assert _shipped(shifts, stop) == shipped


@pytest.mark.slow
def test_a_build_that_drifts_stops_adapting_and_ships_the_fine_tuned_model(tmp_path, monkeypatch, caplog):
    import edgeseg.train.selftrain as selftrain
    from edgeseg.build.pipeline import build
    from edgeseg.models.checkpoint import read_checkpoint

    monkeypatch.setattr(selftrain, "DRIFT_TOLERANCE", -1.0)  # every student counts as drifted
    recipe = tiny_recipe_dict(
        data={"unlabeled": str(_unlabeled_folder(tmp_path))},
        adapt={"rounds": 2, "epochs": 1},  # stop_on_drift is on by default
    )
    with caplog.at_level("WARNING", logger="edgeseg.adapt"):
        results = {r.name: r for r in build(recipe_from_dict(recipe), tmp_path)}
    root = results["adapt"].root
    report = json.loads((root / "adapt.json").read_text())
    assert report["shipped"] == "fine-tuned" and [r["round"] for r in report["rounds"]] == [1]
    assert len(report["class_shifts"]) == 2 and not (root / "round-2" / "done.json").exists()
    shipped, fine_tuned = (read_checkpoint(p)["model"] for p in (root / "best.pt", results["train"].root / "best.pt"))
    assert all(torch.equal(shipped[k], fine_tuned[k]) for k in fine_tuned)
    assert "adapt.stop_on_drift: shipping the fine-tuned model" in caplog.text


def test_a_small_unlabelled_folder_is_repeated_to_its_share_of_the_epoch():
    assert repeats_for_share(305, 40, None) == 1  # each image once by default
    assert repeats_for_share(305, 40, 0.5) == 8  # 320 of 625: the smallest count at or above half
    assert repeats_for_share(16, 8, 0.5) == 2  # exactly half needs no extra copy
    assert repeats_for_share(305, 305, 0.3) == 1  # already over its share: never subsampled
    for labelled, unlabelled, share in [(305, 40, 0.5), (305, 40, 0.33), (16, 3, 0.9)]:
        k = repeats_for_share(labelled, unlabelled, share)
        assert k * unlabelled / (labelled + k * unlabelled) >= share
        assert k == 1 or (k - 1) * unlabelled / (labelled + (k - 1) * unlabelled) < share


@pytest.mark.slow
def test_the_student_trains_on_the_repeated_pseudo_labels(tmp_path):
    from edgeseg.build.pipeline import build

    adapted = tiny_recipe_dict(
        data={"unlabeled": str(_unlabeled_folder(tmp_path))},
        adapt={"rounds": 1, "epochs": 1, "unlabeled_share": 0.6},
    )
    results = {r.name: r for r in build(recipe_from_dict(adapted), tmp_path)}
    report = json.loads((results["adapt"].root / "adapt.json").read_text())
    assert report["rounds"][0]["repeats"] == 3  # 24 of 40 images: 0.6 of the epoch
    history = json.loads((results["adapt"].root / "round-1" / "history.json").read_text())
    assert history[0]["images"] == 40  # 16 labelled + 3 x 8 pseudo-labelled (batch 4, none dropped)
