"""Stage directory names under ``runs/<name>/``: made and parsed here alone.

A stage that runs once per export target or bench device is published as ``<stage>-<instance>``
(``export-onnx-int8``, ``bench-jetson``); the local bench is plain ``bench``.

A bundle measured through a runtime other than its format's first, or computing in another
precision than f32, is a *point* of its own: ``onnx-int8@openvino``, ``openvino-fp16@bf16``,
``onnx-fp32@openvino-bf16``. Its bench result, report row and ``select:`` candidate carry that name.
"""

from __future__ import annotations

EXPORT = "export"
BENCH = "bench"
LOCAL = "local"  # the device name of the machine running the build
STAGE_FILE = "stage.json"  # in every published stage directory: its record, written last


def instance_dir(stage: str, instance: str) -> str:
    """The directory of one run of a per-target or per-device stage."""
    return f"{stage}-{instance}"


def export_dir(target: str) -> str:
    """``export-<target>``: the bundle of export target ``target`` (e.g. ``onnx-int8``)."""
    return instance_dir(EXPORT, target)


def point_name(artifact: str, runtime: str, compute: str, default_runtime: str) -> str:
    """The name of ``artifact`` run by ``runtime`` computing in ``compute`` (plain for its default point)."""
    parts = [part for part, default in ((runtime, default_runtime), (compute, "f32")) if part != default]
    return f"{artifact}@{'-'.join(parts)}" if parts else artifact


def bench_dir(device: str) -> str:
    """``bench`` for the local machine, ``bench-<device>`` for a ``bench.remote`` device."""
    return BENCH if device == LOCAL else instance_dir(BENCH, device)


def export_target(stage_dir: str) -> str | None:
    """The export target a stage directory holds (``export-onnx-int8`` -> ``onnx-int8``), else None."""
    prefix = f"{EXPORT}-"
    return stage_dir[len(prefix) :] if stage_dir.startswith(prefix) else None


def stage_family(stage_dir: str) -> str:
    """The stage a directory is a run of: ``export-onnx-int8`` -> ``export``, ``bench-jetson`` ->
    ``bench``, ``train`` -> ``train`` (stage names hold no "-")."""
    return stage_dir.split("-", 1)[0]
