"""Measurement: latency percentiles, memory, accuracy and the environment, for every artifact.

``bench`` runs each (artifact, runtime) in a fresh Python process (``edgeseg.bench.worker``):
memory deltas then start from that process's own baseline, and thread pools or caches that one
runtime leaves behind never slow the next. With a reference (the fp32 PyTorch checkpoint, or
any fp32 bundle) it is measured first and its class ids become the pixel-agreement baseline of
the others.
"""

from __future__ import annotations

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
    """``measure(spec)`` in a fresh interpreter; its error message comes back as ours."""
    with tempfile.TemporaryDirectory(prefix="edgeseg-bench-") as tmp:
        request, answer = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        request.write_text(json.dumps(spec.to_json()))
        done = subprocess.run([sys.executable, "-m", "edgeseg.bench.worker", str(request), str(answer)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if done.returncode != 0 or not answer.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise EdgesegError(f"{spec.artifact}: benchmark failed: {detail[-1] if detail else f'exit {done.returncode}'}")
        return json.loads(answer.read_text())


def bench(specs: list[BenchSpec], reference: BenchSpec | None = None, *, on_result=None) -> list[dict]:
    """Measure ``specs`` (the reference first, when given), each in its own process.

    Returns:
        One result per spec, the reference's first (its ``role`` is ``"reference"``).
    """
    results = []

    def run(spec: BenchSpec) -> None:
        results.append(run_isolated(spec))
        if on_result:
            on_result(results[-1])

    with tempfile.TemporaryDirectory(prefix="edgeseg-ref-") as tmp:
        saved = None
        if reference is not None:
            saved = (reference.save_predictions or str(Path(tmp) / "reference.npz")) if reference.data else None
            run(replace(reference, save_predictions=saved, extra={**reference.extra, "role": "reference"}))
        for spec in specs:
            run(replace(spec, reference_predictions=saved if spec.data else None))
    return results
