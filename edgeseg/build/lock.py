"""An exclusive lock on an output directory: two runs never write into one.

``fcntl.flock`` on ``<dir>/.lock``: the kernel drops the lock when its holder dies (even by
SIGKILL), so a lock left by a dead process is stale by construction and the next run takes it.
The file names its holder (PID, host, command, start time) for the message a second run prints,
and is removed when the holder finishes; a directory the run created and left empty (it failed
before writing anything) is removed too.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeseg.errors import BusyError

LOCK_FILE = ".lock"


@contextmanager
def locked(directory: Path, command: str) -> Iterator[None]:
    """Hold ``directory``'s lock for the block (the directory is created if missing).

    Raises:
        BusyError: another live process holds it (exit 11), naming that process.
    """
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = _acquire(path, directory)
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": _now()}
        _write_holder(fd, path, holder)
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter that opened it retries on a new file
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created and not any(directory.iterdir()):
            directory.rmdir()


def _write_holder(fd: int, path: Path, holder: dict) -> None:
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
    except OSError as exc:  # os.write names no file: name the lock file (a full disk is exit 9)
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def _acquire(path: Path, directory: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise BusyError(
                f"{directory}: in use by another edgeseg run ({holder}); wait for it to finish, "
                "or write to another directory"
            ) from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder finished and removed this file while we opened it: try again


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "its details are not written yet"
    return f"PID {holder['pid']} on {holder['host']}, `{holder['command']}` since {holder['since']}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
