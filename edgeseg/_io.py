"""File helpers shared by every stage: atomic files, staged directories, digests.

One way to publish anything: write beside the target, then one ``os.replace``. Readers see the
old file (or directory) or the new one, never half of either.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from edgeseg.errors import os_error_in


def write_atomic(path: Path, content: str | bytes | Callable[[BinaryIO], None], *, fsync: bool = True) -> None:
    """Write ``content`` (text, bytes, or a function writing to a binary file) to ``path`` atomically.

    The data goes to a temp file beside ``path``, is flushed and (by default) fsynced, then
    renamed over ``path``: a crash or a full disk at any moment leaves the previous file intact.

    Raises:
        OSError: as the file system reports it, naming ``path`` (a library writing through the
            file object, such as torch.save, reports a full disk as its own RuntimeError with
            the OSError inside: that OSError is raised).
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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = os_error_in(exc)
        if cause is None or cause.filename is not None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from exc


def write_text_atomic(path: Path, text: str) -> None:
    """Small metadata files (JSON, YAML): atomic, without the cost of an fsync each."""
    write_atomic(path, text, fsync=False)


def publish_dir(scratch: Path, final: Path, marker: str) -> None:
    """Swap the finished directory ``scratch`` into ``final``; an old ``final`` is moved aside
    first and removed after, so ``final`` is always whole. Only a folder edgeseg wrote (it holds
    ``marker``) or an empty one is ever replaced (``check_replaceable``)."""
    check_replaceable(final, marker)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(scratch, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


BUILD_OWNS = (
    "a stage directory of an edgeseg build (it holds stage.json); the build owns it: "
    "write elsewhere, or change the recipe and build again"
)


def refuse_stage_dir(out: Path) -> None:
    """A standalone command (train, compress, export) never writes into a build's stage
    directory: the build's cache would trust files it did not write.

    Raises:
        FileExistsError: naming ``out`` (one line, exit 2).
    """
    if (out / "stage.json").is_file() or out.name.endswith(".partial"):
        raise FileExistsError(errno.EEXIST, BUILD_OWNS, str(out))


def check_replaceable(final: Path, marker: str) -> None:
    """Refuse to replace ``final`` unless it is missing, an empty folder, or a folder holding
    ``marker`` (the file edgeseg writes into every output of that kind: ``model.json`` in a
    bundle, ``stage.json`` in a stage): ``--out ~/Documents`` must never delete a thing.

    Raises:
        FileExistsError: naming ``final`` (the CLI prints it in one line, exit 2).
    """
    if not final.exists() and not final.is_symlink():
        return
    if final.is_symlink() or not final.is_dir():
        why = "a link" if final.is_symlink() else "a file"
        raise FileExistsError(errno.EEXIST, f"{why} is in the way; give a new or empty folder", str(final))
    if marker != "stage.json":  # a bundle, a study, a sweep page: never over a build's stage
        refuse_stage_dir(final)
    if (final / marker).is_file() or not any(final.iterdir()):
        return
    raise FileExistsError(
        errno.EEXIST,
        f"holds files edgeseg did not write (no {marker}); edgeseg replaces only its own outputs: "
        "give a new or empty folder",
        str(final),
    )


@contextmanager
def staged_dir(final: Path, marker: str) -> Iterator[Path]:
    """A scratch directory beside ``final``, published as ``final`` when the block succeeds and
    removed when it fails (Ctrl-C too). ``final`` is checked before the work starts, too."""
    check_replaceable(final, marker)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield scratch
        publish_dir(scratch, final, marker)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def folder_fingerprint(folder: str | None) -> dict:
    """File count, bytes and a hash of (path, size, mtime) under ``folder`` (hidden files skipped)."""
    if folder is None:
        return {}
    root = Path(folder)
    if not root.is_dir():
        return {"root": str(root), "exists": False}
    digest, files, size = hashlib.sha256(), 0, 0
    for path, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            stat = os.stat(os.path.join(path, name))
            rel = os.path.relpath(os.path.join(path, name), root)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files, size = files + 1, size + stat.st_size
    return {"root": str(root), "files": files, "bytes": size, "sha256": digest.hexdigest()}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
