"""Measurement: latency percentiles, memory, accuracy and the environment, for every artifact.

``bench`` runs each (artifact, runtime) in a fresh Python process (``edgeseg.bench.worker``):
memory deltas then start from that process's own baseline, and thread pools or caches that one
runtime leaves behind never slow the next. With a reference (the fp32 PyTorch checkpoint, or
any fp32 bundle) it is measured first and its class ids become the pixel-agreement baseline of
the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from edgeseg.bench.measure import SCHEMA, BenchSpec
from edgeseg.errors import EdgesegError

__all__ = ["SCHEMA", "BenchSpec", "bench", "run_isolated"]


def run_isolated(spec: BenchSpec) -> dict:
    """``measure(spec)`` in a fresh interpreter, with a progress bar over its timing rounds; its
    error message comes back as ours."""
    from edgeseg.console import progress

    with tempfile.TemporaryDirectory(prefix="edgeseg-bench-") as tmp:
        request, answer, errors = Path(tmp) / "spec.json", Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        request.write_text(json.dumps(spec.to_json()))
        with open(errors, "w") as stderr, progress(f"bench {spec.name or Path(spec.artifact).name}", None) as advance:
            worker = subprocess.Popen(
                [sys.executable, "-m", "edgeseg.bench.worker", str(request), str(answer)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for line in worker.stdout:
                with contextlib.suppress(
                    ValueError, KeyError, TypeError
                ):  # a runtime printing to stdout is not progress
                    step = json.loads(line)
                    advance(0, completed=step["done"], total=step["total"])
            returncode = worker.wait()
        reply = json.loads(answer.read_text()) if answer.is_file() else None
        if returncode != 0 or reply is None or "error" in reply:
            raise _worker_error(spec, reply, errors.read_text(), returncode)
        return reply


def _worker_error(spec: BenchSpec, reply: dict | None, stderr: str, returncode: int) -> EdgesegError:
    """The worker's error as the same EdgesegError kind (so the same exit code); a crash (no
    reply: a segfault, the OOM killer) with the end of its stderr."""
    from edgeseg import errors

    if reply and "error" in reply:
        kind = getattr(errors, reply["error"]["kind"] or "", None)
        cls = kind if isinstance(kind, type) and issubclass(kind, EdgesegError) else EdgesegError
        message = reply["error"]["message"]
        return cls(message if cls is not EdgesegError else f"{spec.artifact}: benchmark failed: {message}")
    tail = " | ".join(stderr.strip().splitlines()[-3:]) or f"exit {returncode}"
    return EdgesegError(f"{spec.artifact}: the benchmark process died (exit {returncode}): {tail}")


def bench(specs: list[BenchSpec], reference: BenchSpec | None = None, *, on_result=None) -> list[dict]:
    """Measure ``specs`` (the reference first, when given), each in its own process.

    Returns:
        One result per spec, the reference's first (its ``role`` is ``"reference"``).
    """
    results = []
    peaks = _peaks([s for s in (reference, *specs) if s is not None])

    def run(spec: BenchSpec) -> None:
        if spec.device == "cpu" and spec.peaks is None:
            spec = replace(spec, peaks=peaks[spec.threads])
        results.append(run_isolated(spec))
        if on_result:
            on_result(results[-1])

    with tempfile.TemporaryDirectory(prefix="edgeseg-ref-") as tmp:
        # corrupted copies made by the first artifact's worker, read by the others': same pixels
        shared = {"corrupted_cache": str(Path(tmp) / "corrupted")}
        saved = None
        if reference is not None:
            saved = (reference.save_predictions or str(Path(tmp) / "reference.npz")) if reference.data else None
            extra = {**reference.extra, "role": "reference"}
            run(replace(reference, save_predictions=saved, extra=extra, **_cache(reference, shared)))
        for spec in specs:
            run(replace(spec, reference_predictions=saved if spec.data else None, **_cache(spec, shared)))
    return results


def _peaks(specs: list[BenchSpec]) -> dict:
    """This host's GEMM peaks for each thread count the CPU specs run at, measured once here."""
    from edgeseg.bench.floor import host_peaks

    cpu = [s for s in specs if s.device == "cpu" and s.peaks is None]
    bf16 = {
        s.threads for s in cpu if s.precision_hint in ("bf16", "default")
    }  # OpenVINO's default is bf16 where it can
    return {threads: host_peaks(threads, bf16=threads in bf16) for threads in {s.threads for s in cpu}}


def _cache(spec: BenchSpec, shared: dict) -> dict:
    return shared if spec.robustness and not spec.corrupted_cache else {}
