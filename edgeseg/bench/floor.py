"""The compute floor an artifact is held to: its MACs at this host's measured GEMM peak.

The peak is a square GEMM in ONNX Runtime's MLAS, fp32 (MatMul) or int8 (MatMulInteger, u8 x s8:
the VNNI/AVX2 kernels int8 convolutions use), on the bench's threads. An artifact that OpenVINO
runs in bf16 is held to a bf16 GEMM (OpenVINO's MatMul at ``INFERENCE_PRECISION_HINT=bf16``,
AVX512_BF16 or AMX), not fp32's: held to fp32's it would sit below 1.0x its floor. ``p50 /
floor`` says how far an artifact is from compute-bound: 1.0 would mean every MAC ran at the
GEMM's rate. Measured once per bench run (``bench.run.bench``), in the parent process.
"""

from __future__ import annotations

import time

import numpy as np

GEMM_SIZE = 1024
GEMM_SECONDS = 1.0


def peak_gmacs(threads: int | None, precision: str, size: int = GEMM_SIZE, seconds: float = GEMM_SECONDS) -> float:
    """Sustained GMAC/s of a size^3 GEMM, ``precision`` fp32 or int8."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    int8 = precision == "int8"
    a_type, b_type = (TensorProto.UINT8, TensorProto.INT8) if int8 else (TensorProto.FLOAT, TensorProto.FLOAT)
    node = helper.make_node("MatMulInteger" if int8 else "MatMul", ["a", "b"], ["c"])
    inputs = [
        helper.make_tensor_value_info("a", a_type, [size, size]),
        helper.make_tensor_value_info("b", b_type, [size, size]),
    ]
    output = helper.make_tensor_value_info("c", TensorProto.INT32 if int8 else TensorProto.FLOAT, [size, size])
    model = helper.make_model(
        helper.make_graph([node], "gemm", inputs, [output]), opset_imports=[helper.make_opsetid("", 17)]
    )
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if int8:
        feed = {
            "a": rng.integers(0, 255, (size, size), dtype=np.uint8),
            "b": rng.integers(-127, 127, (size, size), dtype=np.int8),
        }
    else:
        feed = {
            "a": rng.standard_normal((size, size), dtype=np.float32),
            "b": rng.standard_normal((size, size), dtype=np.float32),
        }
    return _sustained_gmacs(lambda: session.run(None, feed), size, seconds)


def _sustained_gmacs(call, size: int, seconds: float) -> float:
    """GMAC/s of ``call`` (one size^3 GEMM) repeated for ``seconds`` after 3 warm-up calls."""
    for _ in range(3):
        call()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        calls += 1
    return calls * size**3 / (time.perf_counter() - started) / 1e9


def bf16_peak_gmacs(threads: int | None, size: int = GEMM_SIZE, seconds: float = GEMM_SECONDS) -> float | None:
    """Sustained GMAC/s of a size^3 MatMul that OpenVINO's CPU plugin computes in bf16; None
    where OpenVINO is absent or the CPU has no bf16 (it would compute f32 and call it bf16)."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    rng = np.random.default_rng(0)
    a = ops.parameter([size, size], ov.Type.f32, name="a")
    model = ov.Model(
        [ops.matmul(a, ops.constant(rng.standard_normal((size, size), dtype=np.float32)), False, False)], [a]
    )
    config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    feed = {0: rng.standard_normal((size, size), dtype=np.float32)}
    return _sustained_gmacs(lambda: request.infer(feed), size, seconds)


def host_peaks(threads: int | None, bf16: bool = False) -> dict:
    """{"fp32": GMAC/s, "int8": GMAC/s, "gemm": what was timed}, and "bf16" when asked for (some
    artifact computes in bf16); None values where ONNX Runtime is absent."""
    try:
        peaks = {precision: round(peak_gmacs(threads, precision), 2) for precision in ("fp32", "int8")}
    except ImportError:
        return {"fp32": None, "int8": None, "gemm": "not measured: onnxruntime is not installed"}
    gemm = f"ONNX Runtime MatMul / MatMulInteger {GEMM_SIZE}^3, {threads or 'default'} threads"
    if bf16:
        bf16_peak = bf16_peak_gmacs(threads)
        peaks["bf16"] = None if bf16_peak is None else round(bf16_peak, 2)
        gemm += "; bf16: OpenVINO MatMul at INFERENCE_PRECISION_HINT=bf16"
    return {**peaks, "gemm": gemm}


def floor_section(
    gmacs: float | None, precision: str, peaks: dict | None, p50_ms: float | None, computes: str | None = None
) -> dict | None:
    """The artifact's floor: int8 artifacts at the int8 peak, float ones that the runtime
    computes in bf16 (``computes``, the session's precision) at bf16's, the others at fp32's."""
    if not peaks or not gmacs:
        return None
    peak_precision = "int8" if precision == "int8" else "bf16" if computes == "bf16" else "fp32"
    peak = peaks.get(peak_precision)
    if not peak:
        return None
    floor_ms = gmacs / peak * 1e3
    return {
        "gmacs": gmacs,
        "peak": peak_precision,
        "peak_gmacs_per_s": peak,
        "gemm": peaks["gemm"],
        "compute_floor_ms": round(floor_ms, 4),
        "p50_over_floor": round(p50_ms / floor_ms, 2) if p50_ms else None,
    }
