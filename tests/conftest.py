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
    torch.set_num_threads(2)
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


# The files with the most work, longest first (seconds of test time with `--durations=0`, stop 44,
# a 2-core AMD EPYC Zen 4, 2 workers): CI runs `-n 2 --dist loadfile`, which hands whole files to
# workers in collection order, so a long file collected last leaves one worker running it alone.
HEAVIEST_FIRST = (
    "test_mobile.py",  # 239 s
    "test_quickstart.py",  # 195 s
    "test_pipeline.py",  # 136 s
    "test_compress.py",  # 129 s
    "test_resume.py",  # 119 s
    "test_bench.py",  # 96 s
    "test_export.py",  # 81 s
    "test_real_data.py",  # 69 s
    "test_hardening.py",  # 63 s
    "test_sweep.py",  # 61 s
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-file order is kept


@pytest.fixture(autouse=True)
def _two_threads():
    """Two torch threads, or the cores' share of each xdist worker (CI runs ``-n 2`` on 2 cores)."""
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


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
