"""Measurement: latency percentiles, memory, accuracy and the environment, for every artifact.

This face re-exports the package's entry points; the logic lives in ``run``.
"""

from __future__ import annotations

from edgeseg.bench.run import SCHEMA, BenchSpec, bench, run_isolated

__all__ = ["BenchSpec", "SCHEMA", "bench", "run_isolated"]
