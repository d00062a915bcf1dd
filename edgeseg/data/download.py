"""Checksum-verified downloads that publish atomically: all files of a request, or none."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgeseg._io import sha256_file
from edgeseg.errors import CorruptDataError, DataError


def download_verified(
    base_url: str, files: Mapping[str, str], dest: Path, *, workers: int = 8, timeout: float = 60
) -> None:
    """Fetch ``base_url/<relpath>`` for every ``relpath -> sha256`` into ``dest``.

    Files already in ``dest`` with the right checksum are kept. New files land in a scratch
    directory beside ``dest`` and move into place only once every checksum has matched, so an
    interrupted or corrupted download never leaves a half-populated dataset.

    Raises:
        DataError: naming the URL that failed or the file whose checksum did not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    todo = {rel: sha for rel, sha in files.items() if not _is_valid(dest / rel, sha)}
    if not todo:
        return
    scratch = Path(tempfile.mkdtemp(prefix=".download.", dir=dest))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda item: _fetch(base_url, item[0], item[1], scratch, timeout), todo.items()))
        for rel in todo:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / rel, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _is_valid(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _fetch(base_url: str, rel: str, sha: str, scratch: Path, timeout: float) -> None:
    url = f"{base_url.rstrip('/')}/{rel}"
    out = scratch / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(out, "wb") as f:
            shutil.copyfileobj(response, f)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: download failed ({exc})") from None
    got = sha256_file(out)
    if got != sha:
        raise CorruptDataError(f"{url}: checksum mismatch (expected sha256 {sha[:12]}…, got {got[:12]}…)")
