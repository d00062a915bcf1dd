"""Shared fixtures: tiny recipes on synthetic data, the real data folder, an offline hub cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGESEG_DATA", REPO.parent / "shared" / "data"))
CAMVID = SHARED_DATA / "camvid"
MOBILENET_V2_FILE = (
    SHARED_DATA / "mobilenet_v2_imagenet_torchvision_qnnpack" / "mobilenet_v2_imagenet_dequant_torchvision.pth"
)

needs_camvid = pytest.mark.skipif(not (CAMVID / "val.txt").is_file(), reason=f"CamVid not found at {CAMVID}")


def tiny_recipe_dict(**sections) -> dict:
    """A recipe that trains in about a second: 64x80 synthetic scenes, MobileNetV3-Small."""
    recipe = {
        "name": "tiny",
        "seed": 0,
        "data": {"dataset": "synthetic", "synthetic": {"num_train": 16, "num_val": 8, "height": 64, "width": 80}},
        "model": {"head": "lraspp", "backbone": "mobilenet_v3_small", "backbone_weights": "none"},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01},
        # the harness and the emulated scores are tested on their own (test_bench, test_quickstart)
        "bench": {"iterations": 10, "rounds": 2, "warmup": 2, "emulate": False},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    # the int8 checks on other instruction sets run under qemu, a minute or more an artifact:
    # tested on their own (test_targets, test_quickstart), off here unless a test asks for them
    export = recipe.setdefault("export", {})
    export["verify"] = {"on_target": False, **export.get("verify", {})}
    return recipe


@pytest.fixture
def tiny_recipe():
    from edgeseg.recipe import recipe_from_dict

    def make(**sections):
        return recipe_from_dict(tiny_recipe_dict(**sections))

    return make


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """The tiny model trained for 3 epochs: what the export and phone-format tests convert (read
    only; a test that changes weights changes its own loaded copy)."""
    import torch

    from edgeseg.recipe import recipe_from_dict
    from edgeseg.train.loop import fit

    out = tmp_path_factory.mktemp("tiny-train")
    torch.set_num_threads(THREADS)  # a session fixture runs before the autouse one
    fit(recipe_from_dict(tiny_recipe_dict(train={"epochs": 3})), out)
    return out / "best.pt"


@pytest.fixture(scope="session")
def bench_venv(tmp_path_factory):
    """A venv with what a device gets from `pip install "edgeseg[bench]"`: no torch."""
    import subprocess
    import sys

    venv = tmp_path_factory.mktemp("bench-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(REPO / "constraints.txt"),
            f"{REPO}[bench]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache: files placed in its checkpoints/ stand in for downloads."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home / "hub" / "checkpoints"


# The files with the most work, longest first (seconds of test time, stop 49, a 2-core Intel
# Xeon with AMX, each of 2 workers on a core of its own: benchmarks/results/test_suite.json). CI
# runs `-n 2 --dist loadfile`, which hands whole files to workers in queue order, so a long file
# queued last leaves one worker running it alone while the other idles. pytest-xdist >= 3.6
# reorders that queue by tests per file, which put the one-test quickstart last: one worker
# idled 9.4 min of the 24.4-min run. pytest_configure turns that reordering off.
HEAVIEST_FIRST = (
    "test_quickstart.py",  # 390 s
    "test_mobile.py",  # 273 s
    "test_sweep_ray.py",  # ~200 s: 142 s in stop 49's suite, plus the node-death test (59 s alone)
    "test_compress.py",  # 175 s
    "test_resume.py",  # 160 s
    "test_pipeline.py",  # 140 s
    "test_export.py",  # 110 s
    "test_bench.py",  # 109 s
    "test_hardening.py",  # 92 s
    "test_real_data.py",  # 89 s
    "test_search.py",  # 79 s
    "test_sweep.py",  # 70 s
)

# Each xdist worker's share of the cores, and the torch threads every test and fixture trains
# with. More threads than cores is not a little slower, it is many times slower: OpenMP's
# workers spin while they wait, so a 2-thread fit that takes 7 s alone took 39 s beside one busy
# core and 62 s pinned to one core (stop 49, measured); the suite's 6-epoch fixture took 123 s.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))


def pytest_configure(config):
    """In an xdist worker: this worker's own cores, for it and every process it starts (a build,
    a bench worker, sshd, a Ray node), and as many threads as those cores for the runtimes that
    read it. ONNX Runtime and OpenVINO size their pools by the cores a process may use, torch by
    OMP_NUM_THREADS."""
    if hasattr(config.option, "loadscopereorder"):  # xdist's controller: keep HEAVIEST_FIRST's order
        config.option.loadscopereorder = False
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    index = int(worker[2:])
    mine = allowed[index * THREADS : (index + 1) * THREADS]
    if len(allowed) >= WORKERS * THREADS:
        os.sched_setaffinity(0, mine)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, str(THREADS))


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-file order is kept


@pytest.fixture(autouse=True)
def _two_threads():
    """Two torch threads, or the cores' share of each xdist worker (CI runs ``-n 2`` on 2 cores)."""
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _own_device_leases(tmp_path, monkeypatch):
    """Each test its own device leases: a build benching in the other xdist worker must not make
    this test's bench wait (and print that it waits) beside the one line it checks."""
    monkeypatch.setenv("EDGESEG_LEASES", str(tmp_path / "leases"))


KIT = REPO / "export" / "python" / "segment.py"


def run_kit_without_torch(bundle, images, out, *extra):
    """The deployment kit in a process where torch and edgeseg cannot be imported."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        str(REPO / "tests" / "no_torch.py"),
        str(KIT),
        str(bundle),
        *map(str, images),
        "--out",
        str(out),
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result
