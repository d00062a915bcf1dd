"""The one table of deployment targets: the instruction set an int8 artifact will run on. Torch-free.

Integer kernels differ between instruction sets, and so do int8 results. On x86-64 with AVX2
or AVX-512 but without VNNI, ONNX Runtime and oneDNN multiply u8 activations by s8 weights with
``VPMADDUBSW``, which adds two products into a *saturating* 16-bit sum: 2 x 255 x 127 overflows
it. VNNI, AMX and ARM's dot-product instructions accumulate in 32 bits and do not. The remedy
for a saturating target is 7-bit weights (NNCF's ``OverflowFix``, ORT's ``reduce_range``):
2 x 255 x 64 = 32,640 fits. Measured (benchmarks/README.md, "Build here, run there"): a model
with full-range weights keeps 91.9% of its pixels under emulated AVX2; arm64 matches VNNI bit
for bit.

Everything that knows about targets derives from ``TARGETS``: the recipe's choices, what
quantization does for each, on which instruction sets an export's parity check and accuracy
figure run (``edgeseg.runtimes.emulate`` runs the ones the build host lacks under qemu), and
which execution precisions a build may measure and deploy for it (``compute``: bf16 only where
the target's CPUs have AVX512_BF16 or AMX; the build host's own flags never decide it).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgeseg.registry import lookup, table

# The instruction sets whose int8 numerics differ, and how each is checked on another host.
ISAS = ("x86-avx2", "x86-vnni", "arm64")


@dataclass(frozen=True)
class Target:
    """Where an artifact will run, and what that means for its int8 numerics."""

    name: str
    description: str
    seven_bit_weights: bool  # quantize weights to 7 bits so u8 x s8 pair sums cannot saturate
    check_on: tuple[str, ...]  # the instruction sets (ISAS) whose numerics the export is verified on
    why: str  # recorded in model.json with the quantization choice
    # Execution precisions its CPUs run natively (``export.targets[].compute``): f32 everywhere,
    # bf16 where AVX512_BF16 or AMX does the arithmetic. No x86 target offers f16: OpenVINO runs
    # it on an AVX512-FP16 Xeon without AMX-FP16, but 1.21-1.40x slower than f32 there, and
    # benchmark_app agrees (benchmarks/README.md section 27). OpenVINO's ARM plugin computes f16
    # and ORT has an arm64 bf16 fast-math GEMM, but no session here can check either, so arm64
    # offers f32.
    compute: tuple[str, ...] = ("f32",)


TARGETS: dict[str, Target] = table(
    [
        Target(
            name="any",
            description="any CPU: safe on x86 without VNNI, with VNNI, and on ARM",
            seven_bit_weights=True,
            check_on=ISAS,
            why="7-bit weights: the artifact must not saturate on x86 CPUs without VNNI (VPMADDUBSW)",
        ),
        Target(
            name="x86-avx2",
            description="x86-64 with AVX2 or AVX-512 but no VNNI (older laptops and servers, AMD before Zen 4)",
            seven_bit_weights=True,
            check_on=("x86-avx2",),
            why="7-bit weights: u8 x s8 pair sums saturate at 16 bits without VNNI (VPMADDUBSW)",
        ),
        Target(
            name="x86-vnni",
            description="x86-64 with AVX-512 VNNI, AVX-VNNI or AMX (Intel since Cascade Lake / Alder Lake, AMD Zen 4)",
            seven_bit_weights=False,
            check_on=("x86-vnni",),
            why="full 8-bit weights: VNNI accumulates u8 x s8 products in 32 bits, nothing saturates",
        ),
        Target(
            name="x86-bf16",
            description="x86-64 with AVX512_BF16 or AMX (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 "
            "and later): VNNI int8, and bf16 float execution",
            seven_bit_weights=False,
            check_on=("x86-vnni",),
            why="full 8-bit weights: these CPUs all have VNNI, which accumulates u8 x s8 products in 32 bits",
            compute=("f32", "bf16"),
        ),
        Target(
            name="arm64",
            description="ARM64 CPUs: phones, Jetson and Raspberry Pi (checked on an emulated Cortex-A76)",
            seven_bit_weights=False,
            check_on=("arm64",),
            why="full 8-bit weights: ARM's int8 dot products accumulate in 32 bits, nothing saturates",
        ),
        Target(
            name="cuda",
            description="an NVIDIA GPU through TensorRT",
            seven_bit_weights=False,
            check_on=(),
            why="full 8-bit signed symmetric weights and activations: TensorRT's only int8 scheme",
        ),
    ],
    "target",
)

TARGET_NAMES = tuple(TARGETS)
# Every execution precision some target offers, in the table's order (what the recipe accepts).
COMPUTE_PRECISIONS = tuple(dict.fromkeys(p for t in TARGETS.values() for p in t.compute))
# The CPU flags that make bf16 arithmetic native on x86 (what a bf16 point needs to be measured).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def get_target(name: str) -> Target:
    return lookup(TARGETS, name, "target")


def emulated_checks(target: Target, host: str) -> list[str]:
    """The instruction sets of ``target.check_on`` that the build host is not: each is checked under emulation."""
    return [isa for isa in target.check_on if isa != host]


@cache
def host_isa() -> str:
    """The build host's instruction set, as one of ``ISAS``."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "arm64"
    flags = cpu_features()
    return "x86-vnni" if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} else "x86-avx2"


def host_compute() -> tuple[str, ...]:
    """The execution precisions this machine's CPU runs natively (those of ``COMPUTE_PRECISIONS``)."""
    native = {"f32"} | ({"bf16"} if host_isa() != "arm64" and cpu_features() & BF16_FLAGS else set())
    return tuple(p for p in COMPUTE_PRECISIONS if p in native)


def targets_offering(precision: str) -> list[str]:
    """The targets whose CPUs run ``precision`` natively."""
    return [t.name for t in TARGETS.values() if precision in t.compute]


def cpu_features() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def markdown_table() -> str:
    """The README's table of targets (a test keeps the two equal)."""
    lines = ["| target | where it runs | int8 weights | checked on | compute |", "|---|---|---|---|---|"]
    for t in TARGETS.values():
        weights = "7-bit" if t.seven_bit_weights else ("8-bit signed symmetric" if t.name == "cuda" else "8-bit")
        checked = ", ".join(t.check_on) or "the GPU (TensorRT)"
        lines.append(f"| `{t.name}` | {t.description} | {weights} | {checked} | {', '.join(t.compute)} |")
    return "\n".join(lines)
