"""OpenVINO sessions (IR ``.xml`` or ``.onnx``) on CPU, GPU or NPU.

The CPU plugin runs bf16 by default on CPUs with AVX512_BF16/AMX, so an "fp32" IR is not fp32
unless asked: the session sets ``INFERENCE_PRECISION_HINT=f32`` unless told otherwise, and
reports the precision the compiled model actually uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError, EdgesegError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require

_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}


class OpenVINOSession:
    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision_hint: str | None = None,
        profile: bool = False,
    ):
        ov = require("openvino")
        weights = path.with_suffix(".bin")
        if path.suffix.lower() == ".xml" and not weights.is_file():  # an .onnx holds its own weights
            raise EdgesegError(f"{weights}: missing (the weights of {path.name} live beside it)")
        core = ov.Core()
        target = _DEVICES.get(device.lower())
        if target is None:
            raise DependencyError(f"openvino: unknown device '{device}' (known: {', '.join(_DEVICES)})")
        if target not in ("AUTO", *core.available_devices) and not any(
            d.startswith(target) for d in core.available_devices
        ):
            raise DependencyError(
                f"openvino: device {target} is not available here (available: {', '.join(core.available_devices)})"
            )
        config = {"PERFORMANCE_HINT": "LATENCY"}
        hint = precision_hint or ("f32" if target == "CPU" else "default")
        if hint != "default":
            _check_capability(core, target, hint)
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads and target == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        if profile:  # edgeseg.bench.profile: per-layer counters, in a session of its own
            config["PERF_COUNT"] = True
        model = core.read_model(str(path))
        self._compiled = core.compile_model(model, target, config)
        self._request = self._compiled.create_infer_request()
        self._ov, self._bound = ov, None
        port = self._compiled.input(0)
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        self.input = InputSpec(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()).name)
        effective = _property(self._compiled, "INFERENCE_PRECISION_HINT")
        if hint != "default" and effective is not None and str(effective) != hint:  # never a silent fallback
            raise DependencyError(f"openvino: asked for {hint} on {target}, the compiled model runs {effective}")
        self.info = SessionInfo(
            runtime="openvino",
            device=target,
            threads=_property(self._compiled, "INFERENCE_NUM_THREADS") or threads,
            precision=str(effective) if effective is not None else hint,
            details={
                "openvino": ov.__version__,
                "requested_precision_hint": hint,
                "execution_devices": _property(self._compiled, "EXECUTION_DEVICES"),
            },
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.infer(batch)
        return self._request.get_output_tensor(0).data.copy()  # the caller keeps it past the next call

    def infer(self, batch: np.ndarray) -> None:
        """What bench times: the output is left in the request's buffer, where an app reads it
        in place (as ONNX Runtime hands its output over without a copy). Copying it out costs
        1.2 ms of CamVid's 7 ms int8 call (11x360x480 floats; benchmarks/README.md section 20).

        The input is bound once per buffer and the call is ``start_async`` + ``wait``, as
        ``benchmark_app`` runs it: ``infer({0: batch})`` wraps the array and builds a dict of the
        outputs on every call: 73 us a call against 23 us, on a 1.5 ms quickstart call
        (benchmarks/README.md section 29)."""
        if batch is not self._bound:  # the same array again (bench's loop): its memory is bound already
            if not (batch.flags.c_contiguous and batch.dtype == self.input.dtype):  # not bindable in place
                self._bound = None
                self._request.infer({0: batch}, share_inputs=True, share_outputs=True)  # converts as needed
                return
            self._request.set_input_tensor(self._ov.Tensor(batch, shared_memory=True))
            self._bound = batch  # held, so its id cannot be reused by another array
        self._request.start_async()
        self._request.wait()  # synchronous: batch outlives the call

    def profiling_info(self) -> list:
        """The last call's per-layer counters (``ov.ProfilingInfo``) of a session opened with ``profile``."""
        return self._request.get_profiling_info()


# INFERENCE_PRECISION_HINT -> the OPTIMIZATION_CAPABILITIES entry a device needs to honour it
PRECISION_CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


def _check_capability(core, target: str, hint: str) -> None:
    """bf16 needs AVX512_BF16 or AMX, f16 AMX-FP16 or ARM on the CPU plugin: OpenVINO says which."""
    if target == "AUTO":
        return
    capabilities = core.get_property(target, "OPTIMIZATION_CAPABILITIES")
    if PRECISION_CAPABILITY[hint] not in capabilities:
        can = [p for p, cap in PRECISION_CAPABILITY.items() if cap in capabilities]
        raise DependencyError(f"openvino: {target} cannot run {hint} here (it runs: {', '.join(can)})")


def _property(compiled, name: str):
    try:
        value = compiled.get_property(name)
    except Exception:  # not every plugin exposes every property
        return None
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if hasattr(value, "to_string"):  # ov.Type: "f32", "bf16"
        return value.to_string()
    return value if isinstance(value, int | float) else str(value)
