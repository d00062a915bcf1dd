"""One artifact on one runtime: session creation, latency per batch size, memory, accuracy.

``measure`` runs in the current process; ``edgeseg.bench.run_isolated`` runs it in a fresh
process per artifact so that the memory figures start from that process's own baseline and one
runtime's thread pools never slow the next. No torch import unless the artifact is a PyTorch
checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import ExportError, RecipeError

SCHEMA = "edgeseg.bench/1"


@dataclass(frozen=True)
class BenchSpec:
    """What to measure (JSON-able: it is handed to the worker process as it is)."""

    artifact: str
    name: str | None = None
    runtime: str | None = None
    device: str = "cpu"
    threads: int | None = None
    precision_hint: str | None = None
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    warmup_s: float = 1.0
    iterations: int = 100
    budget_s: float | None = None
    rounds: int = 5
    data: dict | None = None  # a recipe's data section: score on its split
    split: str = "val"
    seed: int = 0
    max_images: int | None = None
    reference_predictions: str | None = None  # .npz of reference class ids, for pixel agreement
    save_predictions: str | None = None  # write this artifact's class ids here (.npz)
    # score on corrupted copies too: {"corruptions": [...], "severities": [...], "max_images": N | None}
    robustness: dict | None = None
    corrupted_cache: str | None = None  # where the corrupted copies are shared between artifacts
    # score again on these instruction sets' int8 numerics, under emulation (edgeseg.targets.ISAS)
    emulate: tuple[str, ...] = ()
    # frame to class map through the deployment kit, on the split's images encoded as files
    end_to_end: bool = False
    frame_encoding: str = "jpeg"  # edgeseg.bench.end_to_end.ENCODINGS
    profile: bool = False  # a per-op profile from the runtime's profiler (edgeseg.bench.profile)
    # this host's GEMM peaks on these threads (edgeseg.bench.floor.host_peaks), set by bench()
    peaks: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def pin_threads(threads: int | None) -> list[int] | None:
    """Pin this process to ``threads`` cores (the first allowed ones): no migration noise."""
    if not threads or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed[: min(threads, len(allowed))]
    os.sched_setaffinity(0, cores)
    return cores


def measure(spec: BenchSpec, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Time, profile and score one artifact in this process; ``on_progress(done, total)`` after
    each timing round and after scoring (steps: rounds per batch size, plus one for accuracy)."""
    from edgeseg.bench import memory
    from edgeseg.bench.accuracy import describe
    from edgeseg.bench.environment import environment
    from edgeseg.bench.timing import timed
    from edgeseg.bundle import artifact_path
    from edgeseg.runtimes.session import open_session

    cores = pin_threads(spec.threads)
    meta = describe(Path(spec.artifact))
    path = artifact_path(spec.artifact)
    if spec.data:
        _check_classes(spec, meta)  # before anything is timed: a mismatch fails at once

    # Memory before the images are decoded: the session would reuse the heap decoding freed (ORT
    # fp32: +37 MB peak after CamVid, +86 MB without). Latency runs on a seeded test image.
    rss_before, gpu_before = memory.rss_mb(), memory.gpu_used_mb()
    how = {"device": spec.device, "threads": spec.threads, "precision_hint": spec.precision_hint}
    session, create_s = timed(lambda: open_session(spec.artifact, spec.runtime, **how))
    rss_session = memory.rss_mb()
    peak_reset = memory.reset_peak()

    step = _counter(_steps(spec), on_progress)
    image = _test_image(meta)
    proof = _prove(spec, meta, session)
    check_facts(session, meta, path, image)
    latency = _time_batches(session, spec, meta, image, step)
    peak, gpu_after = memory.peak_rss_mb(), memory.gpu_used_mb()
    profile = _profile(spec, meta, session, path, image, step) if spec.profile else None
    samples = _load_samples(spec) if spec.data else None
    accuracy = _accuracy(session, spec, meta, step, samples) if spec.data else None
    return {
        "schema": SCHEMA,
        "name": spec.name or Path(spec.artifact).name,
        "artifact": {
            "path": str(spec.artifact),
            "file": path.name,
            "format": meta["artifact"]["format"],
            "precision": meta["artifact"]["precision"],
            "size_mb": round(_size_bytes(path) / 1e6, 4),
        },
        "model": {"input_size": meta["input"]["size"], **meta.get("model", {})},
        "session": {**_session_facts(session.info, cores), "create_s": round(create_s, 4)},
        "latency": latency,
        "memory": {
            "rss_before_mb": _r(rss_before),
            "session_mb": _r(_minus(rss_session, rss_before)),
            "peak_mb": _r(_minus(peak, rss_before)),
            "peak_measured": "VmHWM reset before inference" if peak_reset else "process lifetime peak",
            "gpu_mb": _r(_minus(gpu_after, gpu_before)),
        },
        "accuracy": accuracy,
        "end_to_end": _end_to_end(spec, meta, session, samples, latency, step) if spec.end_to_end else None,
        "floor": _floor(spec, meta, session, latency),
        "profile": profile,
        "proof": proof,
        "settings": _settings(spec),
        "environment": environment(),
        **spec.extra,
    }


def _floor(spec: BenchSpec, meta: dict, session, latency: list[dict]) -> dict | None:
    """The compute floor at batch 1 (``edgeseg.bench.floor``), on the CPU only."""
    from edgeseg.bench.floor import floor_section

    if spec.device != "cpu":
        return None
    gmacs = meta.get("model", {}).get("gmacs")
    precision = meta["artifact"]["precision"]
    return floor_section(gmacs, precision, spec.peaks, _batch_one_p50(latency), session.info.precision)


def _profile(spec: BenchSpec, meta: dict, session, path: Path, image, step) -> dict:
    """Batch 1's per-op profile, in a second session after memory and latency are measured
    (on the CPU: a device runtime's kernels are not what these profilers see)."""
    from edgeseg.bench.accuracy import prepare
    from edgeseg.bench.profile import op_profile

    if spec.device != "cpu":
        profile = {"skipped": f"per-op profiles are taken on the CPU; this ran on {spec.device}"}
    else:
        batch = prepare([image], meta)
        profile = op_profile(path, session.info.runtime, spec.threads, batch, spec.precision_hint)
    step(1)
    return profile


def _batch_one_p50(latency: list[dict]) -> float | None:
    return next((row["p50_ms"] for row in latency if row["batch"] == 1 and "p50_ms" in row), None)


def _steps(spec: BenchSpec) -> int:
    """Progress steps: the timing rounds of each batch size, scoring, end to end, the profile,
    each corruption."""
    corruptions = len(spec.robustness["corruptions"]) if spec.data and spec.robustness else 0
    extras = bool(spec.data) + bool(spec.end_to_end) + bool(spec.profile)
    return len(spec.batches) * spec.rounds + extras + corruptions


def _prove(spec: BenchSpec, meta: dict, session) -> dict | None:
    """A bundle's proof, checked before anything is timed (a checkpoint needs none: its facts
    are read from the file itself). Returns what was checked, for the result."""
    from edgeseg.bundle import SIDECAR, verify_proof

    artifact = Path(spec.artifact)
    bundle = artifact if artifact.is_dir() else artifact.parent
    if not (bundle / SIDECAR).is_file():
        return None
    agreement = verify_proof(bundle, meta, session.run)
    return {"artifact_sha256": meta["proof"]["artifact_sha256"], "reference_agreement": agreement}


def _settings(spec: BenchSpec) -> dict:
    """The spec's measurement settings (not its paths or payloads)."""
    omitted = (
        "artifact", "name", "data", "extra", "reference_predictions", "save_predictions", "corrupted_cache", "peaks",
    )  # fmt: skip
    settings = {k: v for k, v in spec.to_json().items() if k not in omitted}
    return {**settings, "agreement_reference": bool(spec.reference_predictions)}


def check_facts(session, meta: dict, path: Path, image: np.ndarray) -> None:
    """The bundle's model.json must describe its graph, or every figure computed from it is wrong
    (a confusion matrix sized from a wrong class list scores nonsense): input dtype and size,
    and the classes the output holds, checked on one inference.

    Raises:
        ExportError: naming model.json and each fact the graph contradicts (exit 8).
    """
    from edgeseg.bundle import prepare

    problems = []
    wanted, actual = meta["input"]["dtype"], session.input.dtype
    if actual != wanted:
        problems.append(f"input dtype {wanted} (the graph takes {actual})")
    channels_last = meta["input"].get("layout") == "NHWC"
    channels = session.input.shape[3] if channels_last else session.input.shape[1]
    if channels not in (3, None):
        problems.append(f"input layout {meta['input'].get('layout')} (the graph takes shape {session.input.shape})")
    height_width = session.input.shape[1:3] if channels_last else session.input.shape[-2:]
    if None not in height_width and list(height_width) != list(meta["input"]["size"]):
        problems.append(f"input size {meta['input']['size']} (the graph takes {list(height_width)})")
    if problems:  # running a graph model.json does not describe gives the runtime's words, not ours
        raise ExportError(f"{_source(path)} does not describe {path.name}: it says " + "; ".join(problems))
    classes = len(meta["classes"]["names"])
    out = session.run(prepare([image], meta))
    if meta["output"]["kind"] == "class_map":
        if out.ndim != 3 or int(out.max()) >= classes:
            problems.append(
                f"a class map of {classes} classes (the graph outputs shape {list(out.shape)}, max {out.max()})"
            )
    elif out.ndim != 4 or out.shape[1] != classes:
        problems.append(f"{classes} classes (the graph outputs {out.shape[1] if out.ndim == 4 else list(out.shape)})")
    if problems:
        raise ExportError(f"{_source(path)} does not describe {path.name}: it says " + "; ".join(problems))


def _source(path: Path) -> Path:
    from edgeseg.bundle import SIDECAR

    return path if path.suffix == ".pt" else path.parent / SIDECAR


def _check_classes(spec: BenchSpec, meta: dict) -> None:
    """Scoring needs the artifact's classes to be the dataset's (same count, same order)."""
    from edgeseg.data import dataset_info
    from edgeseg.recipe import DataSpec

    theirs = list(dataset_info(DataSpec.model_validate(spec.data)).class_names)
    ours = list(meta["classes"]["names"])
    if len(theirs) != len(ours):
        raise RecipeError(
            f"{spec.artifact}: the artifact has {len(ours)} classes but the recipe's dataset has {len(theirs)} "
            f"({', '.join(theirs[:4])}, ...); score it on the data it was trained for"
        )


def _session_facts(info, cores) -> dict:
    return {
        "runtime": info.runtime,
        "device": info.device,
        "threads": info.threads,
        "pinned_cores": cores,
        "precision": info.precision,
        "details": info.details,
    }


def _time_batches(session, spec: BenchSpec, meta: dict, image, step: Callable[[int], None]) -> list[dict]:
    """Latency at each batch size of ``spec`` (a fixed-batch artifact skips the others)."""
    from edgeseg.bench.accuracy import prepare
    from edgeseg.bench.timing import time_calls

    device_ms = (lambda: session.last_device_ms) if hasattr(session, "last_device_ms") else None
    call = getattr(session, "infer", session.run)  # Session.infer: the output is not copied out
    latency = []
    for batch in spec.batches:
        fixed = session.input.shape[0] if session.input.shape else None
        if fixed is not None and fixed != batch:
            latency.append(
                {
                    "batch": batch,
                    "skipped": f"the artifact's batch is fixed at {fixed} (export with export.dynamic_batch: true)",
                }
            )
            step(spec.rounds)
            continue
        x = prepare([image] * batch, meta)
        latency.append(
            time_calls(
                lambda x=x: call(x),
                batch=batch,
                warmup=spec.warmup,
                warmup_s=spec.warmup_s,
                iterations=spec.iterations,
                budget_s=spec.budget_s,
                rounds=spec.rounds,
                device_ms=device_ms,
                on_round=step,
            )
        )
    return latency


def _score(predictions: list[np.ndarray], samples, spec: BenchSpec, meta: dict) -> dict:
    """mIoU (and agreement with the reference's saved predictions) of the runtime's predictions."""
    from edgeseg.bench.accuracy import load_predictions, save_predictions, score
    from edgeseg.data.splits import group_pattern, groups_of
    from edgeseg.recipe import DataSpec

    reference = load_predictions(spec.reference_predictions) if spec.reference_predictions else None
    groups = groups_of(samples.names, group_pattern(DataSpec.model_validate(spec.data)), spec.split)
    classes = list(meta["classes"]["names"])
    accuracy = {"split": spec.split, **score(predictions, samples.masks, classes, reference, groups)}
    if spec.save_predictions:
        save_predictions(spec.save_predictions, predictions)
    return accuracy


def _accuracy(session, spec: BenchSpec, meta: dict, step: Callable[[int], None], samples) -> dict:
    """Scores on the spec's split, and on corrupted copies of it with ``spec.robustness``."""
    from edgeseg.bench.accuracy import predict

    predictions = predict(session.run, samples.images, meta)
    accuracy = _score(predictions, samples, spec, meta)
    if spec.emulate:
        accuracy["on_target"] = [
            _emulated_accuracy(spec, meta, session.info.runtime, samples, predictions, isa) for isa in spec.emulate
        ]
    step()
    if spec.robustness:
        accuracy["robustness"] = _robustness(session, samples, predictions, spec, meta, step)
    return accuracy


def _end_to_end(spec: BenchSpec, meta: dict, session, samples, latency: list[dict], step) -> dict:
    """The frame-to-class-map section (``edgeseg.bench.end_to_end``), beside batch 1's model-only p50."""
    from edgeseg.bench.end_to_end import end_to_end

    section = end_to_end(spec, meta, session.info.runtime, samples.images, _batch_one_p50(latency))
    step()
    return section


def _emulated_accuracy(spec: BenchSpec, meta: dict, runtime: str, samples, native: list, isa: str) -> dict:
    """mIoU through the same runtime on ``isa``'s numerics (qemu), and its pixel agreement with
    the native run. Emulation is 10-50x slower than native: seconds per image, never latency."""
    import time

    from edgeseg.bench.accuracy import predict, score
    from edgeseg.bundle import artifact_path
    from edgeseg.runtimes.emulate import EmulatedSession, emulated_isa

    started = time.monotonic()
    with EmulatedSession(artifact_path(spec.artifact), runtime, isa) as emulated:
        predictions = predict(emulated.run, samples.images, meta)
        details = emulated.info.details
    seconds = time.monotonic() - started
    scored = score(predictions, samples.masks, list(meta["classes"]["names"]), native)
    return {
        "isa": isa,
        "emulated": emulated_isa(isa),
        "session": details,
        "images": scored["images"],
        "miou": scored["miou"],
        "pixel_accuracy": scored["pixel_accuracy"],
        "per_class_iou": scored["per_class_iou"],
        "agreement_with_native": scored["agreement_with_reference"],
        "seconds_per_image": round(seconds / max(1, scored["images"]), 4),
    }


def _robustness(session, samples, clean, spec: BenchSpec, meta: dict, step: Callable[[int], None]) -> dict:
    """The robustness section; ``clean`` is the runtime's predictions on the uncorrupted images."""
    from edgeseg.bench.robustness import robustness

    cache = Path(spec.corrupted_cache) if spec.corrupted_cache else None
    images, masks = samples.images, samples.masks
    return robustness(
        session.run, images, masks, meta, spec.robustness, clean, seed=spec.seed, cache=cache, on_corruption=step
    )


def _counter(total: int, on_progress: Callable[[int, int], None] | None) -> Callable[[int], None]:
    """``step(n)``: n more of ``total`` steps done, reported to ``on_progress``."""
    done = 0

    def step(steps: int = 1) -> None:
        nonlocal done
        done += steps
        if on_progress:
            on_progress(done, total)

    return step


def _load_samples(spec: BenchSpec):
    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    samples = load_split(DataSpec.model_validate(spec.data), spec.split, spec.seed, arrays=True)
    if spec.max_images:
        n = spec.max_images
        samples.images, samples.masks, samples.names = samples.images[:n], samples.masks[:n], samples.names[:n]
    return samples


def _test_image(meta: dict) -> np.ndarray:
    height, width = meta["input"]["size"]
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _size_bytes(path: Path) -> int:
    """The artifact's own bytes (OpenVINO's weights .bin included; a Core ML package's files)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    return size


def _minus(a, b):
    return None if a is None or b is None else a - b


def _r(value):
    return None if value is None else round(float(value), 3)
