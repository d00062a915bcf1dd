"""Fine-tuning: checkpoints, resume = uninterrupted, schedules, freezing, class weights, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from edgeseg.errors import CheckpointError
from edgeseg.models.checkpoint import load_model, read_checkpoint
from edgeseg.train.loop import fit

from conftest import REPO


class Interrupt(Exception):
    pass


def test_fit_writes_checkpoints_and_history(tmp_path, tiny_recipe):
    result = fit(tiny_recipe(), tmp_path, show_progress=False)
    assert len(result.history) == 2
    assert result.best.is_file() and result.last.is_file()
    assert json.loads((tmp_path / "history.json").read_text()) == result.history
    assert result.best_miou == max(r["val_miou"] for r in result.history)
    best = read_checkpoint(result.best)
    assert "optimizer" not in best and best["val_metrics"]["miou"] == result.best_miou
    last = read_checkpoint(result.last)
    assert {"optimizer", "scheduler", "rng", "epoch"} <= set(last) and last["epoch"] == 2
    loaded = load_model(result.best)
    assert loaded.class_names[0] == "sky" and loaded.input_size == (64, 80)


def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_recipe):
    recipe = tiny_recipe(train={"epochs": 3})
    straight = fit(recipe, tmp_path / "straight", show_progress=False)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(recipe, tmp_path / "resumed", on_epoch=stop_after_first, show_progress=False)
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    resumed = fit(recipe, tmp_path / "resumed", resume=True, show_progress=False)

    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    a = read_checkpoint(straight.last)["model"]
    b = read_checkpoint(resumed.last)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_ema_warms_up_then_averages_with_the_decay():
    from edgeseg.train.loop import weight_ema

    model = torch.nn.BatchNorm1d(1)
    ema = weight_ema(model, decay=0.9)
    values = []
    for step in range(1, 40):
        with torch.no_grad():
            model.weight.fill_(float(step))
            model.running_mean.fill_(float(step))
        ema.update_parameters(model)
        values.append(float(ema.module.weight))
    # the first update copies; the n-th (n >= 1) averages with min(0.9, (1 + n) / (10 + n))
    assert values[0] == 1.0
    assert values[1] == pytest.approx(1.0 * (2 / 11) + 2.0 * (9 / 11))
    expected = values[-2] * 0.9 + 39.0 * 0.1  # (1 + n) / (10 + n) > 0.9 from n = 80: not yet
    assert values[-1] == pytest.approx(values[-2] * (39 / 48) + 39.0 * (9 / 48))
    assert values[-1] != pytest.approx(expected)
    # buffers (BatchNorm statistics) are averaged with the weights
    assert float(ema.module.running_mean) == pytest.approx(values[-1])


def test_ema_is_what_is_validated_selected_saved_and_resumed(tmp_path, tiny_recipe):
    recipe = tiny_recipe(train={"epochs": 3, "ema_decay": 0.99})
    straight = fit(recipe, tmp_path / "straight", show_progress=False)
    last = read_checkpoint(straight.last)
    best = read_checkpoint(straight.best)
    # best.pt holds the average, not the raw weights; last.pt holds both to resume
    raw, averaged = last["model"], {k.removeprefix("module."): v for k, v in last["ema"].items()}
    differs = [k for k in raw if not torch.equal(raw[k], averaged[k])]
    assert differs, "the EMA should differ from the raw weights after 3 epochs"
    if best["epoch"] == 3:
        assert all(torch.equal(best["model"][k], averaged[k]) for k in raw)
    # the validated score is the EMA's: re-scoring best.pt reproduces the recorded selection mIoU
    from edgeseg.eval.evaluate import evaluate_checkpoint

    rescored = evaluate_checkpoint(straight.best, "val")
    assert rescored["miou"] == pytest.approx(best["val_metrics"]["miou"], abs=0.05)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(recipe, tmp_path / "resumed", on_epoch=stop_after_first, show_progress=False)
    resumed = read_checkpoint(fit(recipe, tmp_path / "resumed", resume=True, show_progress=False).last)
    assert all(torch.equal(last["ema"][k], resumed["ema"][k]) for k in last["ema"])


def test_resume_refuses_another_recipe(tmp_path, tiny_recipe):
    fit(tiny_recipe(train={"epochs": 1}), tmp_path, show_progress=False)
    with pytest.raises(CheckpointError, match="different recipe"):
        fit(tiny_recipe(train={"epochs": 2, "lr": 0.5}), tmp_path, resume=True, show_progress=False)


def test_seeded_runs_repeat(tmp_path, tiny_recipe):
    a = fit(tiny_recipe(train={"epochs": 1}), tmp_path / "a", show_progress=False)
    b = fit(tiny_recipe(train={"epochs": 1}), tmp_path / "b", show_progress=False)
    assert a.history[0]["loss"] == b.history[0]["loss"]


def test_frozen_backbone_does_not_move(tmp_path, tiny_recipe):
    recipe = tiny_recipe(train={"epochs": 1, "freeze_backbone_epochs": 1})
    from edgeseg.models import build_model

    torch.manual_seed(recipe.seed)
    initial = build_model(recipe.model, 8).state_dict()
    trained = read_checkpoint(fit(recipe, tmp_path, show_progress=False).last)["model"]
    conv_keys = [k for k in initial if k.startswith("backbone.") and k.endswith("weight") and initial[k].ndim == 4]
    assert all(torch.equal(initial[k], trained[k]) for k in conv_keys)
    assert not torch.equal(initial["classifier.high_classifier.weight"], trained["classifier.high_classifier.weight"])


def test_backbone_stages_slice_the_backbone_in_depth_order(tiny_recipe):
    from edgeseg.models import build_model
    from edgeseg.train.schedule import backbone_stages

    model = build_model(tiny_recipe().model, 8)
    stages = backbone_stages(model, 4)
    names = [n for stage in stages for n, _ in stage]
    assert names == [n for n, _ in model.named_parameters() if n.startswith("backbone.")]
    assert len(stages) == 4 and max(map(len, stages)) - min(map(len, stages)) <= 1


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({}, [0, 0, 0, 0, 0, 0]),
        ({"frozen_stages": 2}, [2, 2, 2, 2, 2, 2]),
        ({"freeze_backbone_epochs": 2}, [4, 4, 0, 0, 0, 0]),
        ({"unfreeze_every_epochs": 1}, [4, 3, 2, 1, 0, 0]),
        ({"unfreeze_every_epochs": 2, "frozen_stages": 1}, [4, 4, 3, 3, 2, 2]),
    ],
)
def test_frozen_stages_per_epoch(tiny_recipe, train, expected):
    from edgeseg.train.schedule import frozen_stage_count

    spec = tiny_recipe(train={"epochs": 6, **train}).train
    assert [frozen_stage_count(spec, epoch) for epoch in range(6)] == expected


def test_partial_fine_tuning_keeps_the_first_stages_and_gradual_unfreezing_opens_from_the_top(tmp_path, tiny_recipe):
    from edgeseg.models import build_model
    from edgeseg.train.schedule import backbone_stages

    recipe = tiny_recipe(train={"epochs": 1, "frozen_stages": 2})
    torch.manual_seed(recipe.seed)
    initial = dict(build_model(recipe.model, 8).named_parameters())
    trained = read_checkpoint(fit(recipe, tmp_path / "partial", show_progress=False).last)["model"]
    stages = backbone_stages(build_model(recipe.model, 8), 4)
    moved = [any(not torch.equal(initial[n], trained[n]) for n, _ in stage) for stage in stages]
    assert moved == [False, False, True, True]

    gradual = tiny_recipe(train={"epochs": 2, "unfreeze_every_epochs": 1})
    history = fit(gradual, tmp_path / "gradual", show_progress=False).history
    assert [r["frozen_stages"] for r in history] == [4, 3]
    assert history[0]["backbone_frozen"] and not history[1]["backbone_frozen"]
    weights = read_checkpoint(tmp_path / "gradual" / "last.pt")["model"]
    moved = [any(not torch.equal(initial[n], weights[n]) for n, _ in stage) for stage in stages]
    assert moved == [False, False, False, True]  # only the top stage trained, in epoch 2


def test_layer_lr_decay_scales_each_stage_from_the_top(tiny_recipe):
    from edgeseg.models import build_model
    from edgeseg.train.schedule import param_groups

    spec = tiny_recipe(train={"lr": 1.0, "backbone_lr_mult": 0.5, "layer_lr_decay": 0.5}).train
    groups = param_groups(build_model(tiny_recipe().model, 8), spec)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"backbone.0": 0.0625, "backbone.1": 0.125, "backbone.2": 0.25, "backbone.3": 0.5, "head": 1.0}
    plain = param_groups(build_model(tiny_recipe().model, 8), tiny_recipe().train)
    assert {g["name"] for g in plain} == {"backbone", "head"}  # without decay: the groups as before


def test_frozen_stages_cannot_exceed_the_stages(tiny_recipe):
    from edgeseg.errors import RecipeError

    with pytest.raises(RecipeError, match=r"train.frozen_stages: 5 is more than train.backbone_stages \(4\)"):
        tiny_recipe(train={"frozen_stages": 5})


def test_early_stopping(tmp_path, tiny_recipe, monkeypatch):
    import edgeseg.train.loop as loop

    scores = iter([10.0, 30.0, 20.0, 25.0, 40.0, 50.0])
    real_summarize = loop.summarize
    monkeypatch.setattr(loop, "summarize", lambda cm, names: {**real_summarize(cm, names), "miou": next(scores)})
    result = fit(tiny_recipe(train={"epochs": 6, "early_stopping_patience": 2}), tmp_path, show_progress=False)
    assert [r["val_miou"] for r in result.history] == [10.0, 30.0, 20.0, 25.0]  # 2 epochs without a new best
    assert result.best_miou == 30.0 and read_checkpoint(result.best)["epoch"] == 2


def test_schedule_warmup_then_poly_to_zero(tiny_recipe):
    from edgeseg.train.schedule import make_scheduler

    spec = tiny_recipe(train={"epochs": 2, "warmup_epochs": 1, "lr": 1.0}).train
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, spec, iters_per_epoch=4)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and lrs[5] < 1.0 and lrs == sorted(lrs[:4]) + sorted(lrs[4:], reverse=True)
    assert opt.param_groups[0]["lr"] == 0.0


def test_time_budget_schedule_follows_the_clock(tiny_recipe):
    from edgeseg.train.schedule import make_scheduler

    spec = tiny_recipe(train={"lr": 1.0, "schedule": "cosine"}).train
    used = [0.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, spec, iters_per_epoch=100, budget_used=lambda: used[0])
    used[0] = 0.5
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    used[0] = 1.2
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_median_frequency_weights():
    from edgeseg.data.samples import Samples
    from edgeseg.train.schedule import median_frequency_weights

    # class 0: 3/4 of image A; class 1: 1/4 of A and all of B; class 2 never appears.
    a = torch.tensor([[0, 0], [0, 1]], dtype=torch.uint8)
    b = torch.tensor([[1, 1], [1, 255]], dtype=torch.uint8)
    weights = median_frequency_weights(Samples([None, None], [a, b], ["a", "b"]), 3)
    freq = torch.tensor([3 / 4, 4 / 7])
    median = freq.median()
    assert torch.allclose(weights, torch.tensor([median / freq[0], median / freq[1], 0.0]))


def test_lovasz_weight_adds_an_iou_surrogate_that_counts_a_rare_class_like_a_common_one():
    from torch import nn

    from edgeseg.recipe import TrainSpec
    from edgeseg.train.schedule import CrossEntropyLovasz, make_loss

    assert type(make_loss(TrainSpec(), None)) is nn.CrossEntropyLoss
    loss = make_loss(TrainSpec(lovasz_weight=0.5), None)
    assert isinstance(loss, CrossEntropyLovasz)
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 0, :2] = 1  # class 1: 2 pixels in 100
    target[0, 9, :] = 255  # ignored
    right = torch.where(torch.nn.functional.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).bool(), 20.0, -20.0)
    assert float(loss(right, target)) == pytest.approx(0.0, abs=1e-6)
    blind = torch.zeros(1, 2, 10, 10)
    blind[:, 0] = 5.0  # sure of class 0 everywhere: misses the rare class
    ce = float(nn.CrossEntropyLoss(ignore_index=255)(blind, target))
    lovasz = (float(loss(blind, target)) - ce) / 0.5
    assert ce < 0.15 and lovasz > 0.45  # about half: class 1's IoU is 0, class 0's nearly 1
    noisy = blind.clone()
    noisy[:, :, 9] = torch.randn(2, 10) * 10  # the ignored row counts for neither term
    assert float(loss(noisy, target)) == pytest.approx(float(loss(blind, target)))


def test_param_groups_scale_the_backbone_lr(tiny_recipe):
    from edgeseg.models import build_model
    from edgeseg.train.schedule import make_optimizer

    spec = tiny_recipe(train={"lr": 0.1, "backbone_lr_mult": 0.1, "weight_decay": 0.5}).train
    opt = make_optimizer(build_model(tiny_recipe().model, 3), spec)
    by_name = {(g["name"], g["weight_decay"]): g["lr"] for g in opt.param_groups}
    assert by_name == {
        ("backbone", 0.5): pytest.approx(0.01),
        ("backbone", 0.0): pytest.approx(0.01),
        ("head", 0.5): 0.1,
        ("head", 0.0): 0.1,
    }


@pytest.mark.slow
def test_two_process_ddp_with_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "ddp_worker.py"), str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # Both ranks saw the same all-reduced validation mIoU every epoch.
    assert [h["val_miou"] for h in rank0["history"]] == [h["val_miou"] for h in rank1["history"]]
    assert len(rank0["history"]) == 2 and rank0["best_miou"] == rank1["best_miou"]
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and len(last["history"]) == 2
