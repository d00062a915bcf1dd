"""A build killed with SIGKILL (in training, in a compression step) resumes where it stopped and
ends with the weights an uninterrupted build writes, bit for bit."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_recipe_dict


@pytest.mark.slow
def test_build_killed_during_training_resumes_from_the_last_epoch(tmp_path):
    """SIGKILL mid-training, build again: training continues and ends where a clean run ends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    from edgeseg.models.checkpoint import read_checkpoint

    data = tiny_recipe_dict(
        train={"epochs": 6}, data={"synthetic": {"num_train": 64, "num_val": 8, "height": 64, "width": 80}}
    )
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(json.dumps(data))
    cmd = [sys.executable, "-m", "edgeseg", "build", str(recipe_file), "--runs", str(tmp_path / "killed"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    partial = tmp_path / "killed" / "tiny" / ".train.partial" / "last.pt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(partial)["epoch"]
    assert 1 <= killed_at < 6, "the build must be killed mid-training for this test to mean anything"
    assert not (tmp_path / "killed" / "tiny" / "train").exists()  # nothing half-published

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((tmp_path / "killed" / "tiny" / "train" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]

    # The uninterrupted reference runs in the same environment (thread count changes float sums).
    clean_cmd = [*cmd[:6], str(tmp_path / "clean"), "-q"]
    assert subprocess.run(clean_cmd, env=env, capture_output=True).returncode == 0
    a = read_checkpoint(tmp_path / "clean" / "tiny" / "train" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "killed" / "tiny" / "train" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _kill_when(cmd: list[str], env: dict, checkpoint) -> int:
    """Run ``cmd``, SIGKILL it as soon as ``checkpoint`` appears; the epoch it had reached."""
    import signal
    import subprocess
    import time

    from edgeseg.models.checkpoint import read_checkpoint

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return read_checkpoint(checkpoint)["epoch"]


@pytest.mark.slow
def test_build_killed_during_compression_resumes_inside_the_step(tmp_path):
    """SIGKILL in a prune fine-tune, and again in QAT: each rebuild resumes inside the step (the
    finished step and the calibrated quantizers are not redone) and ends with the weights an
    uninterrupted build writes, bit for bit."""
    import os
    import subprocess
    import sys

    import torch

    from edgeseg.models.checkpoint import read_checkpoint

    steps = [{"kind": "prune", "target_macs": 0.5, "epochs": 4}, {"kind": "qat", "epochs": 3, "calibration_samples": 8}]
    data = tiny_recipe_dict(
        train={"epochs": 1},
        data={"synthetic": {"num_train": 64, "num_val": 8, "height": 64, "width": 80}},
        compress={"steps": steps},
        bench={"accuracy": False, "reference": False, "iterations": 2, "rounds": 1, "warmup": 1},
    )
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(json.dumps(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the thread count changes float sums

    def command(runs: str) -> list[str]:
        return [sys.executable, "-m", "edgeseg", "build", str(recipe_file), "--runs", str(tmp_path / runs), "-q"]

    assert subprocess.run(command("clean"), env=env, capture_output=True).returncode == 0
    clean = read_checkpoint(tmp_path / "clean" / "tiny" / "compress" / "model.pt")
    for runs, killed_in, epochs in (("prune", "1-prune/round1", 4), ("qat", "2-qat", 3)):
        partial = tmp_path / runs / "tiny" / ".compress.partial" / "steps"
        killed_at = _kill_when(command(runs), env, partial / killed_in / "last.pt")
        assert 1 <= killed_at < epochs, "the build must be killed mid-step for this test to mean anything"
        assert not (tmp_path / runs / "tiny" / "compress").exists()  # nothing half-published
        if runs == "qat":  # the prune step had finished and the quantizers were calibrated
            assert (partial / "1-prune" / "done.pt").is_file() and (partial / "2-qat" / "start.pt").is_file()
        resumed = subprocess.run(command(runs), env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        compressed = read_checkpoint(tmp_path / runs / "tiny" / "compress" / "model.pt")
        assert compressed["compression"] == clean["compression"]
        assert all(torch.equal(compressed["model"][k], clean["model"][k]) for k in clean["model"]), runs
        report = json.loads((tmp_path / runs / "tiny" / "compress" / "report.json").read_text())
        prune, qat = report["steps"]
        history = prune["rounds"][0]["history"] if runs == "prune" else qat["qat"]["history"]
        assert [r["epoch"] for r in history] == list(range(1, epochs + 1))
