"""Host and GPU memory of an inference session.

Host: resident set size from /proc/self (Linux). The kernel's high-water mark (VmHWM) can be
reset by writing 5 to /proc/self/clear_refs, so the peak of one phase is measured exactly, not
sampled. Elsewhere the peak falls back to ``resource.getrusage`` (process lifetime), which is why
``edgeseg bench`` runs every artifact in a fresh process: the baseline is then that process's.
GPU: free/total device memory from the CUDA runtime (cuda-python), where there is a GPU.
"""

from __future__ import annotations

import os
import resource
import sys


def rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def gpu_used_mb() -> float | None:
    """Device memory in use (all processes), or None without a CUDA GPU and cuda-python."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt
        except ImportError:
            return None
    err, free, total = rt.cudaMemGetInfo()
    if int(err) != 0:
        return None
    return (total - free) / 2**20
