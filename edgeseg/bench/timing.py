"""Latency of one callable, measured the way a figure people decide with should be.

- Warm-up first, counted and reported: at least ``warmup`` calls and at least ``warmup_s``
  seconds, so lazy allocations, JIT-compiled kernels and CPU frequency ramps are behind us.
- Then ``rounds`` rounds of timed calls (a fixed count each, or a time budget split evenly), on
  ``time.perf_counter_ns`` (CLOCK_MONOTONIC: immune to wall-clock steps).
- Percentiles over every timed call; the p50 of each round too, whose coefficient of variation
  says whether the figure is reproducible (the harness's own quality measure).
- ``sync`` runs inside the timed region after each call: for a GPU session it waits for the
  device, so asynchronous launches are never mistaken for finished work.

Pure Python and numpy: it runs where only a runtime is installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_calls(
    run: Callable[[], object],
    *,
    batch: int = 1,
    warmup: int = 10,
    warmup_s: float = 1.0,
    iterations: int | None = 100,
    budget_s: float | None = None,
    rounds: int = 5,
    sync: Callable[[], None] | None = None,
    device_ms: Callable[[], float | None] | None = None,
    on_round: Callable[[], None] | None = None,
) -> dict:
    """Time ``run()`` (one batch of ``batch`` images per call).

    Args:
        run: one inference on a prepared batch.
        batch: images per call (for throughput).
        warmup: minimum warm-up calls; warm-up also lasts at least ``warmup_s`` seconds.
        iterations: timed calls in all (split over ``rounds``); ignored when ``budget_s`` is set.
        budget_s: time the calls for this long instead of a fixed count.
        rounds: independent rounds; their p50 spread is the reported coefficient of variation.
        sync: wait for the device after each call (GPU); inside the timed region.
        device_ms: after each timed call, the device time it took (CUDA events), if known.
        on_round: called after each round, outside the timed calls (progress display).

    Returns:
        p50/p90/p99/mean/std/min/max in ms, throughput in images/s, warm-up and iteration
        counts, per-round p50s and their coefficient of variation.
    """

    def call() -> int:
        started = time.perf_counter_ns()
        run()
        if sync is not None:
            sync()
        return time.perf_counter_ns() - started

    warm_calls, warm_started = 0, time.perf_counter()
    while warm_calls < warmup or time.perf_counter() - warm_started < warmup_s:
        call()
        warm_calls += 1
    warm_seconds = time.perf_counter() - warm_started

    device: list[float] = []

    def timed_call() -> int:
        elapsed = call()
        if device_ms is not None and (ms := device_ms()) is not None:
            device.append(ms)
        return elapsed

    per_round = []
    for _ in range(rounds):
        per_round.append(_one_round(timed_call, iterations, budget_s, rounds))
        if on_round is not None:
            on_round()
    return {
        "batch": batch,
        "warmup": {"calls": warm_calls, "seconds": round(warm_seconds, 3)},
        **_summary(per_round, batch, device),
    }


def _one_round(timed_call: Callable[[], int], iterations: int | None, budget_s: float | None, rounds: int) -> list[int]:
    """One round's call times (ns): its share of ``budget_s``, else of ``iterations``."""
    times = []
    if budget_s is not None:
        deadline = time.perf_counter() + budget_s / rounds
        while not times or time.perf_counter() < deadline:
            times.append(timed_call())
    else:
        for _ in range(max(1, (iterations or 1) // rounds)):
            times.append(timed_call())
    return times


def _summary(per_round: list[list[int]], batch: int, device: list[float]) -> dict:
    """Percentiles over every timed call; the spread of the rounds' p50s as the CV."""
    ms = np.asarray([t for times in per_round for t in times], dtype=np.float64) / 1e6
    p50s = np.asarray([float(np.median(times)) / 1e6 for times in per_round])
    return {
        "iterations": len(ms),
        "rounds": len(per_round),
        "p50_ms": _r(np.percentile(ms, 50)),
        "p90_ms": _r(np.percentile(ms, 90)),
        "p99_ms": _r(np.percentile(ms, 99)),
        "mean_ms": _r(ms.mean()),
        "std_ms": _r(ms.std()),
        "min_ms": _r(ms.min()),
        "max_ms": _r(ms.max()),
        "throughput_ips": round(batch * 1000.0 / float(ms.mean()), 3),
        "round_p50_ms": [_r(v) for v in p50s],
        "p50_cv": round(float(p50s.std() / p50s.mean()), 5) if len(p50s) > 1 and p50s.mean() > 0 else None,
        "device_p50_ms": _r(np.median(device)) if device else None,  # GPU time alone (CUDA events), no copies
    }


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(result, seconds) of one call: session creation and engine builds are timed apart."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _r(value) -> float:
    return round(float(value), 4)
