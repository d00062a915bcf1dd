"""Fine-tuning: checkpoints, resume = uninterrupted, schedules, freezing, class weights, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from edgeseg.checkpoint import load_model, read_checkpoint
from edgeseg.errors import CheckpointError
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
