"""Timing leases: one artifact timed on a device at a time.

Two builds timing on one CPU (or one phone) at once slow each other down, and both write the
slower figure into bench.json as if it were the device's. So a stage that times (``Stage.times_on``)
holds the device's lease while it runs; a cache hit never waits for it. On one machine the lease
is a lock file under ``$EDGESEG_LEASES`` (default ``$EDGESEG_CACHE/devices/``), shared by every
edgeseg process of this user (a sweep's ``--jobs``, a second build in another terminal); on a
Ray cluster it is claimed through the sweep's claims actor (``RayClaims.device``), a local
bench per node.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

LOCAL = "local"  # this machine's own CPU (and accelerator): what the local bench stage times on


def lease_name(device: str) -> str:
    """A file-system-safe name for ``device`` (``local``, ``ssh:pi@10.0.0.7:22``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device)


def waiting_line(device: str) -> str:
    return f"waiting for {device}: another build is timing on it (one artifact timed on a device at a time)"


def leases_dir() -> Path:
    from edgeseg.runtimes.debian_cache import cache_dir

    return Path(os.environ.get("EDGESEG_LEASES") or cache_dir() / "devices")


@contextlib.contextmanager
def host_lease(device: str, lock_dir: Path | None = None, on_wait: Callable[[str], None] | None = None):
    """The lease on ``device`` among this machine's edgeseg processes: an flock, released when
    the holder closes it or dies (a killed build never leaves the device taken). ``on_wait``
    gets the line saying why it waits (default: the log)."""
    if lock_dir is None:
        lock_dir = leases_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{lease_name(device)}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (on_wait or logging.getLogger(__name__).info)(waiting_line(device))
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def device_lease(shared, device: str | None):
    """The lease a timing stage holds: none for a stage that times nothing, the sweep's claims'
    (``shared.claims.device``) in a sweep, this machine's otherwise."""
    if device is None:
        return contextlib.nullcontext()
    if shared is not None:
        return shared.claims.device(device)
    return host_lease(device)
