"""TensorRT engines: the file layout that carries build facts, and a session that runs them.

An engine only runs with the TensorRT version and GPU architecture it was built for, so an
edgeseg ``model.engine`` is ``<4-byte little-endian length><JSON header><serialized engine>``;
the header records both, and loading refuses a mismatch with how to rebuild on the target.
Device memory goes through cuda-python (``cuda.bindings``), not torch: this runs on a Jetson
with only tensorrt and numpy installed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError, EdgesegError
from edgeseg.runtimes.session import InputSpec, SessionInfo, require


def write_engine_file(path: Path, header: dict, engine: bytes) -> None:
    blob = json.dumps(header, sort_keys=True).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(blob)))
        f.write(blob)
        f.write(engine)


def read_engine_file(path: Path) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    try:
        (length,) = struct.unpack("<I", data[:4])
        header = json.loads(data[4 : 4 + length])
    except (struct.error, ValueError) as exc:
        raise EdgesegError(f"{path}: not an edgeseg TensorRT engine (no header: {exc})") from None
    return header, data[4 + length :]


def cudart():
    """cuda-python's runtime module (its import path moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise DependencyError(
                'cuda-python is not installed; install it with: pip install "edgeseg[tensorrt]"'
            ) from None
    return runtime


def check(result):
    """Unwrap a cuda-python ``(err, *values)`` tuple, raising on any error."""
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        raise EdgesegError(f"CUDA error: {rt.cudaGetErrorString(err)[1].decode()}")
    return values[0] if len(values) == 1 else values


def gpu_facts() -> dict:
    """Name and compute capability of GPU 0; raises DependencyError without one."""
    rt = cudart()
    err, count = rt.cudaGetDeviceCount()
    if err != rt.cudaError_t.cudaSuccess or count == 0:
        raise DependencyError("TensorRT needs an NVIDIA GPU and none is visible here (CUDA reports no device)")
    props = check(rt.cudaGetDeviceProperties(0))
    return {"gpu": props.name.decode().rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}


def check_compatible(path: Path, header: dict, trt_version: str, facts: dict) -> None:
    built = (header.get("tensorrt"), header.get("compute_capability"))
    here = (trt_version, facts["compute_capability"])
    if built != here:
        raise EdgesegError(
            f"{path}: engine built with TensorRT {built[0]} for compute capability {built[1]}, but this "
            f"machine has TensorRT {here[0]} on {facts['gpu']} (compute capability {here[1]}); engines do "
            f"not move between versions or GPU architectures. Rebuild it on this machine: "
            f"edgeseg export CHECKPOINT --format tensorrt --precision {header.get('precision', 'fp16')}"
        )


class TensorRTSession:
    def __init__(
        self, path: Path, *, device: str = "cuda", threads: int | None = None, precision_hint: str | None = None
    ):
        trt = require("tensorrt")
        rt = cudart()
        facts = gpu_facts()
        header, blob = read_engine_file(path)
        check_compatible(path, header, trt.__version__, facts)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise EdgesegError(f"{path}: TensorRT could not deserialize the engine")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self._in, self._out = inputs[0], outputs[0]
        shape = tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(self._in))
        self.input = InputSpec(self._in, shape, np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in))).name)
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._out)))
        self._stream = check(rt.cudaStreamCreate())
        self._events = (check(rt.cudaEventCreate()), check(rt.cudaEventCreate()))  # bracket the engine's own work
        self.last_device_ms: float | None = None
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.info = SessionInfo(
            "tensorrt",
            f"cuda:0 ({facts['gpu']})",
            None,
            header.get("precision", "?"),
            {**facts, "tensorrt": trt.__version__},
        )

    def _buffer(self, name: str, nbytes: int) -> int:
        rt = cudart()
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                check(rt.cudaFree(ptr))
            ptr = check(rt.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
            self._context.set_tensor_address(name, ptr)
        return ptr

    def run(self, batch: np.ndarray) -> np.ndarray:
        rt = cudart()
        batch = np.ascontiguousarray(batch, dtype=self.input.dtype)
        self._context.set_input_shape(self._in, batch.shape)
        out = np.empty(tuple(self._context.get_tensor_shape(self._out)), dtype=self._out_dtype)
        d_in = self._buffer(self._in, batch.nbytes)
        d_out = self._buffer(self._out, out.nbytes)
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(rt.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes, h2d, self._stream))
        check(rt.cudaEventRecord(self._events[0], self._stream))
        if not self._context.execute_async_v3(self._stream):
            raise EdgesegError("TensorRT execution failed")
        check(rt.cudaEventRecord(self._events[1], self._stream))
        check(rt.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self._stream))
        check(rt.cudaStreamSynchronize(self._stream))  # the host copy is complete: wall time is honest
        self.last_device_ms = float(check(rt.cudaEventElapsedTime(*self._events)))  # GPU time of the engine alone
        return out

    def __del__(self):
        try:
            rt = cudart()
            for ptr, _ in self._buffers.values():
                rt.cudaFree(ptr)
            for event in self._events:
                rt.cudaEventDestroy(event)
            rt.cudaStreamDestroy(self._stream)
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass
