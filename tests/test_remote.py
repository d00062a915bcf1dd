"""``edgeseg bench --remote``: a real OpenSSH server on 127.0.0.1 and a torch-free "device".

The device is a separate venv with ``edgeseg[bench]`` (no torch), reached through sshd with a
throwaway key and its own ssh_config, exactly as a user's Jetson would be. Each failure mode is
a real one: a closed port, a refused key, a missing command, a missing runtime, and a full disk
(a file-size limit on the device's shell: writes fail with EFBIG as they would with ENOSPC).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import loopback_sshd
import pytest
from test_bench import validate

from edgeseg import __version__

from conftest import tiny_recipe_dict


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd on 127.0.0.1 (see loopback_sshd for its aliases: device, stranger, full, nobody-home)."""
    try:
        server = loopback_sshd.start(tmp_path_factory.mktemp("sshd"))
    except loopback_sshd.Unavailable as exc:
        pytest.skip(str(exc))
    yield {"config": server.config, "port": server.port}
    server.stop()


@pytest.fixture(scope="module")
def bundle(checkpoint, tmp_path_factory):
    """An ONNX fp32 bundle of the tiny model, and the recipe file that scores it."""
    import yaml

    from edgeseg.exporters import export_checkpoint
    from edgeseg.recipe import ExportTarget, recipe_from_dict

    root = tmp_path_factory.mktemp("remote-bundle")
    raw = tiny_recipe_dict()
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    export_checkpoint(checkpoint, recipe_from_dict(raw), ExportTarget(format="onnx"), root / "onnx-fp32")
    return {"bundle": root / "onnx-fp32", "recipe": root / "tiny.yaml"}


def edgeseg(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeseg", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def remote_args(sshd, venv, alias="device"):
    return ("--remote", alias, "--ssh-config", sshd["config"], "--remote-edgeseg", venv / "bin" / "edgeseg")


TIMING = ("--iterations", "20", "--rounds", "2", "--warmup", "2")


@pytest.mark.slow
def test_remote_bench_through_sshd_scores_the_same_pixels_as_the_local_bench(sshd, bench_venv, bundle, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    args = (bundle["bundle"], "--recipe", bundle["recipe"], "--split", "train", *TIMING)  # any split: not only val
    done = edgeseg("bench", *args, "--json", local, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = edgeseg("bench", *args, *remote_args(sshd, bench_venv), "--json", remote, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[device]" in done.stderr  # the device's progress, streamed
    document = json.loads(remote.read_text())
    validate(document, "bench.schema.json")  # the same schema as a local bench, plus the device
    assert document["devices"][0]["name"] == "device" and document["devices"][0]["edgeseg"] == __version__
    here, there = json.loads(local.read_text())["results"][0], document["results"][0]
    assert there["device"] == "device" and there["session"]["runtime"] == "onnxruntime"
    assert there["artifact"]["path"] == str(bundle["bundle"])
    assert "torch" not in there["environment"]["versions"]  # measured by the device's torch-free install
    assert there["accuracy"]["images"] == here["accuracy"]["images"] == 16
    assert there["accuracy"]["split"] == there["settings"]["split"] == "train"
    assert there["accuracy"]["miou"] == here["accuracy"]["miou"]  # the same pixels, decoded there
    assert there["latency"][0]["p50_ms"] > 0 and there["memory"]["peak_mb"] > 0
    leftovers = subprocess.run(["sh", "-c", "ls -d /tmp/edgeseg-bench.* 2>/dev/null"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""  # the device's work directory is removed


@pytest.mark.parametrize(
    "alias, extra, code, message",
    [
        ("nobody-home", (), 12, "unreachable"),
        ("stranger", (), 13, "authentication failed"),
        ("full", (), 9, "disk is full"),
        ("device", ("--runtime", "tensorrt"), 7, "tensorrt is not installed"),
    ],
    ids=["unreachable", "auth-refused", "disk-full", "runtime-missing"],
)
@pytest.mark.slow
def test_each_remote_failure_has_its_message_and_exit_code(
    sshd, bench_venv, bundle, tmp_path, alias, extra, code, message
):
    out = tmp_path / "out.json"
    done = edgeseg(
        "bench", bundle["bundle"], "--recipe", bundle["recipe"], *TIMING, *extra, *remote_args(sshd, bench_venv, alias),
        "--json", out, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == code, done.stderr[-2000:]
    assert message in done.stderr and alias in done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) < 600  # one line, not a traceback
    assert not out.exists()  # nothing written locally


@pytest.mark.slow
def test_a_device_without_edgeseg_or_with_another_version_gets_the_install_command(sshd, bundle, tmp_path):
    old = tmp_path / "old-edgeseg"
    old.write_text("#!/bin/sh\necho 0.1.0\n")
    old.chmod(0o755)
    for command in (tmp_path / "no-such-edgeseg", old):
        done = edgeseg(
            "bench", bundle["bundle"], "--remote", "device", "--ssh-config", sshd["config"],
            "--remote-edgeseg", command, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 7, done.stderr[-2000:]
        assert 'pip install "edgeseg[bench]==' in done.stderr
    assert "the device has edgeseg 0.1.0" in done.stderr


@pytest.mark.slow
def test_remote_takes_bundle_directories(sshd, bundle, tmp_path):
    done = edgeseg("bench", bundle["bundle"] / "model.onnx", "--remote", "device", cwd=tmp_path)
    assert done.returncode == 2 and "bundle directories" in done.stderr


def test_device_host_parsing():
    from edgeseg.bench.remote import Device

    assert Device.parse("me@jetson:2222").ssh_command()[-4:] == ["-p", "2222", "--", "me@jetson"]
    assert Device.parse("jetson").ssh_command()[-2:] == ["--", "jetson"]
    assert Device.parse("me@jetson:2222").name == "jetson"
    assert "BatchMode=yes" in Device.parse("x").ssh_command()  # never a password prompt


@pytest.mark.slow
def test_a_build_benches_on_its_remote_device_and_selects_by_its_figures(sshd, bench_venv, tmp_path):
    from edgeseg.build.pipeline import build
    from edgeseg.recipe import recipe_from_dict

    device = {"name": "loopback", "host": "device", "ssh_config": str(sshd["config"])}
    device["edgeseg"] = str(bench_venv / "bin" / "edgeseg")
    raw = tiny_recipe_dict(train={"epochs": 1}, bench={"remote": [device]})
    build(recipe_from_dict({**raw, "select": {"device": "loopback", "max_latency_ms": 500}}), tmp_path)
    run = tmp_path / "tiny"
    there = json.loads((run / "bench-loopback" / "bench.json").read_text())["results"][0]
    assert there["device"] == "loopback" and "torch" not in there["environment"]["versions"]
    decision = json.loads((run / "decision.json").read_text())
    assert decision["device"] == "loopback" and decision["chosen"]["latency_ms"] == there["latency"][0]["p50_ms"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["devices"]) == ["loopback"] and metrics["devices"]["loopback"][0]["name"] == "onnx-fp32"
    assert "## Measured on each device" in (run / "report.md").read_text()
    assert (run / "deploy" / "model.onnx").is_file()


@pytest.mark.slow
def test_the_device_refuses_a_bundle_that_lies_with_exit_8(sshd, bench_venv, bundle, tmp_path):
    """Round two, 3: the device's edgeseg checks the bundle's proof before it measures."""
    import json
    import shutil

    lying = tmp_path / "lying"
    shutil.copytree(bundle["bundle"], lying)
    meta = json.loads((lying / "model.json").read_text())
    meta["input"]["preprocessing"]["std"] = [1.0, 1.0, 1.0]
    (lying / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "out.json"
    done = edgeseg("bench", lying, *TIMING, *remote_args(sshd, bench_venv), "--json", out, cwd=tmp_path)
    assert done.returncode == 8, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "device" in last and "input.preprocessing.std" in last and not out.exists()
