"""What machine and software a measurement ran on, recorded next to every figure.

Everything is read from files and tools that exist on the machine (/proc, /sys, nvidia-smi,
nvpmodel); what cannot be read is left out rather than guessed. No torch import.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from edgeseg.formats import packages
from edgeseg.targets import cpu_features
from edgeseg.versions import package_versions

# The training stack, plus every format's toolchain and runtime (from the format table).
_PACKAGES = ("torch", "torchvision", "onnxslim", "nncf", "torchao", "torch-pruning", "timm", "numpy", *packages())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(
    wanted=(
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
        "amx_fp16",
        "neon",
        "asimd",
        "asimddp",
    ),
) -> list[str]:
    """The CPU features that change speed or int8/bf16/f16 numerics, in a fixed order."""
    present = cpu_features()
    return [flag for flag in wanted if flag in present]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _run(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_clock() -> dict:
    """Frequency governor and current/max clock of CPU 0, where cpufreq exposes them."""
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    facts = {
        "governor": _read(base + "scaling_governor"),
        "cur_mhz": _read(base + "scaling_cur_freq"),
        "max_mhz": _read(base + "cpuinfo_max_freq"),
    }
    for key in ("cur_mhz", "max_mhz"):
        if facts[key] is not None:
            facts[key] = round(int(facts[key]) / 1000)
    return {k: v for k, v in facts.items() if v is not None}


def gpus() -> list[dict]:
    """NVIDIA GPUs: name, driver, memory, clocks (nvidia-smi), where there are any."""
    out = _run(
        "nvidia-smi",
        "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,compute_cap",
        "--format=csv,noheader,nounits",
    )
    if not out:
        return []
    keys = ("name", "driver", "memory_mb", "sm_clock_mhz", "sm_clock_max_mhz", "compute_capability")
    return [dict(zip(keys, (v.strip() for v in line.split(",")), strict=False)) for line in out.splitlines()]


def jetson() -> dict | None:
    """Jetson (L4T) release, power mode and GPU clock, read where the board exposes them."""
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    facts = {"l4t": release.splitlines()[0], "power_mode": _run("nvpmodel", "-q")}
    for device in Path("/sys/class/devfreq").glob("*"):
        if "gpu" in device.name or "gv11b" in device.name or "ga10b" in device.name:
            facts["gpu_cur_freq_hz"] = _read(str(device / "cur_freq"))
            facts["gpu_max_freq_hz"] = _read(str(device / "max_freq"))
    return {k: v for k, v in facts.items() if v is not None}


def environment() -> dict:
    """CPU (model, flags, clock), cores, GPUs, Jetson power mode, OS, Python and versions."""
    env = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_clock": cpu_clock(),
        "cores_online": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": package_versions(_PACKAGES),
        "gpus": gpus(),
    }
    board = jetson()
    if board:
        env["jetson"] = board
    if "torch" in sys.modules:  # only report torch's threads if the measuring code loaded it
        import torch

        env["torch_threads"] = torch.get_num_threads()
    return env
