"""One artifact timed on a device at a time: the lease a timing stage holds (edgeseg.build.devices),
across threads and processes of this machine; which stages hold it, and for which device."""

from __future__ import annotations

import logging
import threading
import time

from edgeseg.build.devices import host_lease, lease_name
from edgeseg.build.stages import STAGES


def _time_on(device: str, lock_dir, spans: list, hold_s: float) -> None:
    with host_lease(device, lock_dir):
        start = time.monotonic()
        time.sleep(hold_s)
        spans.append((device, start, time.monotonic()))


def test_a_second_timing_on_the_same_device_waits_and_says_so(tmp_path, caplog):
    spans: list = []
    first = threading.Thread(target=_time_on, args=("local", tmp_path, spans, 0.4))
    first.start()
    time.sleep(0.1)  # the first holds the lease
    with caplog.at_level(logging.INFO, logger="edgeseg.build.devices"):
        _time_on("local", tmp_path, spans, 0.0)
    first.join()
    (_, _, first_end), (_, second_start, _) = spans
    assert second_start >= first_end  # never timed side by side
    assert "waiting for local: another build is timing on it" in caplog.text


def test_other_devices_are_timed_side_by_side(tmp_path, caplog):
    spans: list = []
    first = threading.Thread(target=_time_on, args=("local", tmp_path, spans, 0.4))
    first.start()
    time.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="edgeseg.build.devices"):
        _time_on("ssh:pi@10.0.0.7", tmp_path, spans, 0.0)
    first.join()
    assert [device for device, *_ in spans] == ["ssh:pi@10.0.0.7", "local"] and "waiting" not in caplog.text


def test_a_dead_holder_never_leaves_the_device_taken(tmp_path):
    import subprocess
    import sys

    # a process that takes the lease and is killed while holding it (flock dies with it)
    code = (
        "import pathlib, sys, time\n"
        "from edgeseg.build.devices import host_lease\n"
        "with host_lease('local', pathlib.Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    spans: list = []
    _time_on("local", tmp_path, spans, 0.0)
    assert len(spans) == 1


def test_the_bench_stages_and_only_they_hold_a_device(tiny_recipe):
    recipe = tiny_recipe(
        bench={"remote": [{"name": "jetson", "host": "nvidia@10.0.0.7"}, {"name": "same", "host": "nvidia@10.0.0.7"}]}
    )
    timing = {
        name: stage.times_on(target) for stage in STAGES if stage.times_on for name, target in stage.instances(recipe)
    }
    # a device is its SSH host, not the recipe's name for it: two names for one board share its lease
    assert timing == {"bench": "local", "bench-jetson": "ssh:nvidia@10.0.0.7", "bench-same": "ssh:nvidia@10.0.0.7"}
    assert lease_name("ssh:nvidia@10.0.0.7:22") == "ssh_nvidia_10.0.0.7_22"


def test_edgeseg_bench_waits_for_a_build_timing_on_this_cpu(checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGESEG_LEASES": str(tmp_path / "held")}
    command = [sys.executable, "-m", "edgeseg", "bench", str(checkpoint), "--iterations", "4"]
    with host_lease("local", tmp_path / "held"):
        bench = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(1.0)
        assert bench.poll() is None  # still waiting: nothing timed beside the holder
    out, err = bench.communicate(timeout=120)
    assert bench.returncode == 0, err[-2000:]
    assert "waiting for local: another build is timing on it" in err and "best" in out


def test_edgeseg_bench_refuses_what_cannot_run_before_it_waits_for_the_cpu(checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGESEG_LEASES": str(tmp_path / "held")}
    command = [sys.executable, "-m", "edgeseg", "bench", str(checkpoint), "--precision", "bf16"]
    with host_lease("local", tmp_path / "held"):  # a build is timing: a bad request is not queued behind it
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 7 and "waiting" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: {checkpoint}: torch runs an artifact at the precision its file holds (it takes no precision); "
        "bf16 execution: openvino"
    ]
