"""Another instruction set's numerics on this host: a runtime session under qemu user-mode emulation.

``EmulatedSession`` starts ``python -m edgeseg.runtimes.emulated`` once under qemu (Debian's
``qemu-user-static``; no root, no binfmt) and passes batches to it over a pipe, so the same
``Session.run`` that verifies and benches a native artifact runs it with the target's kernels:

- ``x86-avx2``: ``qemu-x86_64-static -cpu Haswell`` runs this very interpreter and venv; the
  runtimes read the CPU's features from CPUID and pick their AVX2 (non-VNNI) int8 kernels.
  qemu 7.2 has no AVX-512, so no ``-cpu`` gives more.
- ``arm64``: ``qemu-aarch64-static -cpu cortex-a76`` runs Debian's arm64 Python with the
  runtimes' aarch64 wheels (``edgeseg.runtimes.debian_cache`` assembles them once into a
  cache directory).
- ``x86-vnni`` cannot be emulated (qemu has no VNNI). Its int8 products accumulate exactly in
  32 bits, as ARM's do; measured bit-identical, so arm64 stands in for it on a host without VNNI.

Emulated code runs 10-50x slower than native: it gives numerics, never latency.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

from edgeseg.errors import DependencyError, EdgesegError
from edgeseg.runtimes.session import InputSpec, SessionInfo

QEMU_INSTALL = "sudo apt-get install qemu-user-static"
QEMU = {"x86-avx2": "qemu-x86_64-static", "arm64": "qemu-aarch64-static"}
# What runs an instruction set's numerics when qemu cannot: the same exact 32-bit accumulation.
STAND_INS = {"x86-vnni": "arm64"}
STARTUP_TIMEOUT_S = 600  # importing a runtime under emulation takes 10-60 s; a wedged one is killed


def emulated_isa(isa: str) -> str:
    """The instruction set qemu actually runs for ``isa`` (itself, or its stand-in)."""
    return STAND_INS.get(isa, isa)


def emulation_plan(target: str) -> dict[str, list[str]]:
    """The emulated runs an int8 artifact for ``target`` needs on this host: each instruction set
    qemu runs -> the target's instruction sets it checks (arm64 may stand for x86-vnni too)."""
    from edgeseg.targets import emulated_checks, get_target, host_isa

    runs: dict[str, list[str]] = {}
    for isa in emulated_checks(get_target(target), host_isa()):
        runs.setdefault(emulated_isa(isa), []).append(isa)
    return runs


def qemu_binary(isa: str) -> str:
    """The qemu executable for ``isa``: installed, else Debian's package unpacked into the cache
    (``edgeseg.runtimes.debian_cache``), else a DependencyError (exit 7) with the install command."""
    from edgeseg.runtimes.debian_cache import qemu_from_cache

    name = QEMU[emulated_isa(isa)]
    found = shutil.which(name) or shutil.which(name.removesuffix("-static")) or qemu_from_cache(name)
    if not found:
        raise DependencyError(
            f"checking int8 numerics on {isa} needs {name} (user-mode emulation), which is not installed; "
            f"install it with: {QEMU_INSTALL}"
        )
    return str(found)


def worker_command(isa: str, artifact: Path, runtime: str, threads: int) -> tuple[list[str], dict]:
    """The argv and environment that run the session worker on ``isa``'s numerics."""
    from edgeseg.targets import host_isa

    if host_isa() == "arm64" and emulated_isa(isa) != "arm64":  # qemu-x86_64 would need an x86 userland
        raise DependencyError(
            f"{isa} numerics cannot be checked from an arm64 host; build on x86, or choose export target arm64"
        )
    qemu = qemu_binary(isa)
    tail = ["-m", "edgeseg.runtimes.emulated", str(artifact), runtime, str(threads)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if emulated_isa(isa) == "x86-avx2":
        return [qemu, "-cpu", "Haswell", sys.executable, *tail], env
    from edgeseg.runtimes.debian_cache import CPU, userland

    land = userland(runtime)
    env["PYTHONPATH"] = os.pathsep.join([str(land.site), str(Path(__file__).resolve().parents[2])])
    env.pop("PYTHONHOME", None)
    return [qemu, "-cpu", CPU, "-L", str(land.root), str(land.python), "-S", *tail], env


class EmulatedSession:
    """A ``Session`` whose ``run`` executes in a runtime under qemu (see the module docstring)."""

    def __init__(self, artifact: Path, runtime: str, isa: str, *, threads: int | None = None):
        # qemu runs each guest thread on a host thread: by default, every core this process may use
        threads = threads or len(os.sched_getaffinity(0))
        argv, env = worker_command(isa, artifact, runtime, threads)
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        hello = self._read_message()
        if hello is None or "error" in hello:
            self.close()
            raise EdgesegError(f"{artifact}: {runtime} under emulated {isa}: {self._failure(hello)}")
        self.isa = isa
        self.input = InputSpec(hello["input"]["name"], tuple(hello["input"]["shape"]), hello["input"]["dtype"])
        self.info = SessionInfo(
            runtime=runtime,
            device="cpu",
            threads=threads,
            precision=hello["precision"],
            details={
                **hello["details"],
                "emulated": isa,
                **({"stand_in": emulated_isa(isa)} if isa in STAND_INS else {}),
                "qemu": Path(argv[0]).name,
            },
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        buffer = BytesIO()
        np.save(buffer, np.ascontiguousarray(batch), allow_pickle=False)
        try:
            _write_frame(self._proc.stdin, buffer.getvalue())
            answer = _read_frame(self._proc.stdout)
        except (BrokenPipeError, EOFError):
            answer = None
        if answer is None:
            raise EdgesegError(f"the emulated {self.info.runtime} stopped: {self._failure(None)}")
        return np.load(BytesIO(answer), allow_pickle=False)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> EmulatedSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_message(self) -> dict | None:
        import select

        ready, _, _ = select.select([self._proc.stdout], [], [], STARTUP_TIMEOUT_S)
        if not ready:
            self._proc.kill()
            return None
        frame = _read_frame(self._proc.stdout)
        return None if frame is None else json.loads(frame)

    def _failure(self, hello: dict | None) -> str:
        if hello and "error" in hello:
            return hello["error"]
        self._proc.poll()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        code = self._proc.returncode
        how = "it did not answer" if code is None else f"exit {code}" + (" (a crash)" if code < 0 else "")
        return f"{how}; {lines[-1] if lines else 'no message'}"


def _write_frame(stream, payload: bytes) -> None:
    stream.write(struct.pack("<Q", len(payload)) + payload)
    stream.flush()


def _read_frame(stream) -> bytes | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack("<Q", header)
    payload = stream.read(size)
    return payload if len(payload) == size else None
