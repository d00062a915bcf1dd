"""File helpers shared by every stage: atomic files, staged directories, digests.

One way to publish anything: write beside the target, then one ``os.replace``. Readers see the
old file (or directory) or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, content: str | bytes | Callable[[BinaryIO], None], *, fsync: bool = True) -> None:
    """Write ``content`` (text, bytes, or a function writing to a binary file) to ``path`` atomically.

    The data goes to a temp file beside ``path``, is flushed and (by default) fsynced, then
    renamed over ``path``: a crash or a full disk at any moment leaves the previous file intact.

    Raises:
        OSError: as the file system reports it (callers name the file in their own terms).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Small metadata files (JSON, YAML): atomic, without the cost of an fsync each."""
    write_atomic(path, text, fsync=False)


def publish_dir(scratch: Path, final: Path) -> None:
    """Swap the finished directory ``scratch`` into ``final``; an old ``final`` is moved aside
    first and removed after, so ``final`` is always whole."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(scratch, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A scratch directory beside ``final``, published as ``final`` when the block succeeds and
    removed when it fails (Ctrl-C too)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield scratch
        publish_dir(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
