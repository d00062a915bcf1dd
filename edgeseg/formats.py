"""The one table of export formats and the runtimes that open them. Torch-free.

Everything that knows about a format derives from ``FORMATS``: the recipe's choices, the
artifact file inside a bundle, the toolchain checked before a build, which runtime verifies an
export and which runtimes ``edgeseg bench`` may open it with, the versions recorded with it, the
bench JSON schema's enums (a test checks them), CLI help and the tests' parametrisation.

Adding a format means one ``Format`` row here, one exporter module with a ``build(job, out)``
function, a runtime module if no listed runtime opens the file, and their tests.

int8 comes from one of two flows (``Format.quantizer``): ``nncf`` (the compression stage's
NNCF model, or NNCF PTQ at export: ONNX, OpenVINO, TensorRT) or ``pt2e`` (PyTorch 2 export
quantization with the quantizer of the runtime that will run the file: ExecuTorch's XNNPACK,
LiteRT's own), which starts from the float model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import PurePath

from edgeseg.registry import lookup, table

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Runtime:
    """An inference runtime: how to open a session, and what it needs installed."""

    name: str
    session: str  # "module:Class" of its Session, imported only when used
    module: str  # the Python module it needs
    package: str  # the distribution that provides it (for recorded versions)
    install: str  # how to get it
    device: str = "cpu"  # where an export is verified with it
    # The instruction sets (edgeseg.targets.ISAS) whose int8 numerics qemu can run it on here:
    # x86-avx2 runs this venv; arm64 needs the runtime's aarch64 wheel (runtimes/debian_cache.py).
    emulated_on: tuple[str, ...] = ()
    not_emulated: str = ""  # why the other instruction sets cannot be emulated (measured), for model.json
    # Execution precisions it can be asked for on CPU (`bench --precision`): the others run every
    # artifact at the precision its file holds, which is "f32" for a float model.
    precisions: tuple[str, ...] = ("f32",)


# What `bench --precision` accepts: "default" is the runtime's own choice (OpenVINO: bf16 on CPUs
# with AVX512_BF16 or AMX), which edgeseg never picks unasked.
EXECUTION_PRECISIONS = ("f32", "bf16", "f16", "default")


@dataclass(frozen=True)
class Format:
    """An export format: the file it writes and everything needed to build, verify and run it."""

    name: str
    file: str  # the artifact inside its bundle directory
    runtimes: tuple[str, ...]  # the runtimes that can open the file; the first opens it by default
    exporter: str  # "module:function" that builds it: (ExportJob, out_dir) -> Built
    toolchain: tuple[str, ...]  # runtimes/modules (keys of TOOLS) needed to build and verify it
    precisions: tuple[str, ...] = PRECISIONS
    precision_note: str = ""  # the recipe's error for a missing precision: which to use, and why
    quantizer: str = "nncf"  # where int8 comes from: "nncf" or "pt2e" (see the module docstring)
    # "module:function" (job, artifact, built) -> verification dict; the default runs the artifact
    # through its first runtime. A format whose runtime cannot run on the build machine names its own.
    verifier: str = "edgeseg.exporters.verify:verify_bundle"
    fixed_shape: bool = False  # exported at one input size, batch 1 (what phones run)

    @property
    def suffix(self) -> str:
        return PurePath(self.file).suffix

    @property
    def verify_runtime(self) -> Runtime:
        return RUNTIMES[self.runtimes[0]]


RUNTIMES: dict[str, Runtime] = table(
    [
        Runtime(
            name="onnxruntime",
            session="edgeseg.runtimes.onnxruntime_rt:OnnxRuntimeSession",
            module="onnxruntime",
            package="onnxruntime",
            install="pip install onnxruntime",
            emulated_on=("x86-avx2", "arm64"),
        ),
        Runtime(
            name="openvino",
            session="edgeseg.runtimes.openvino_rt:OpenVINOSession",
            module="openvino",
            package="openvino",
            install="pip install openvino",
            emulated_on=("x86-avx2",),
            not_emulated="PyPI has no aarch64 openvino wheel after 2025.2, so none at this host's version",
            precisions=EXECUTION_PRECISIONS,
        ),
        Runtime(
            name="tensorrt",
            session="edgeseg.runtimes.tensorrt_rt:TensorRTSession",
            module="tensorrt",
            package="tensorrt",
            install='pip install "edgeseg[tensorrt]" (on the machine with the NVIDIA GPU)',
            device="cuda",
        ),
        Runtime(
            name="executorch",
            session="edgeseg.runtimes.executorch_rt:ExecuTorchSession",
            module="executorch.runtime",
            package="executorch",
            install='pip install "edgeseg[executorch]" (its Python runtime needs torch)',
            # x86-avx2 runs this venv under qemu (XNNPACK picks its AVX2 kernels; measured
            # bit-identical to VNNI). Its aarch64 wheel exists, but its Python binding links
            # libtorch, and PyPI's aarch64 torch is the CUDA (SBSA) build, which will not import
            # without NVIDIA's CUDA libraries (the CPU build is on download.pytorch.org).
            emulated_on=("x86-avx2",),
            not_emulated="its Python runtime needs torch, and PyPI's aarch64 torch is the CUDA build "
            "(it needs NVIDIA's CUDA libraries to import)",
        ),
        Runtime(
            name="litert",
            session="edgeseg.runtimes.litert_rt:LiteRTSession",
            module="ai_edge_litert.interpreter",
            package="ai-edge-litert",
            install="pip install ai-edge-litert",
            emulated_on=("x86-avx2", "arm64"),
        ),
        Runtime(
            name="coreml",
            session="edgeseg.runtimes.coreml_rt:CoreMLSession",
            module="coremltools",
            package="coremltools",
            install='pip install "edgeseg[coreml]" (Core ML runs models on macOS only)',
        ),
        Runtime(
            name="torch",
            session="edgeseg.runtimes.torch_rt:TorchSession",
            module="torch",
            package="torch",
            install='pip install "edgeseg[train]"',
        ),
    ],
    "runtime",
)

# Build-side tools a format may need besides its runtimes: module -> (distribution, install).
TOOLS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "pip install onnx"),
    "litert_torch": ("litert-torch", 'pip install "edgeseg[litert]"'),
    **{r.module: (r.package, r.install) for r in RUNTIMES.values()},
}

FORMATS: dict[str, Format] = table(
    [
        Format(
            name="onnx",
            file="model.onnx",
            runtimes=("onnxruntime", "openvino", "tensorrt"),
            exporter="edgeseg.exporters.onnx_export:build",
            toolchain=("onnx", "onnxruntime"),
        ),
        Format(
            name="ort",
            file="model.ort",
            runtimes=("onnxruntime",),
            exporter="edgeseg.exporters.ort_export:build",
            toolchain=("onnx", "onnxruntime"),
        ),
        Format(
            name="openvino",
            file="model.xml",
            runtimes=("openvino",),
            exporter="edgeseg.exporters.openvino_export:build",
            toolchain=("onnx", "openvino"),
        ),
        Format(
            name="tensorrt",
            file="model.engine",
            runtimes=("tensorrt",),
            exporter="edgeseg.exporters.tensorrt_export:build",
            toolchain=("onnx", "tensorrt"),
            precisions=("fp16", "int8"),
            precision_note="tensorrt engines are built as fp16 or int8 (an fp32 engine gains nothing over ONNX "
            "Runtime's CUDA provider): use precision fp16",
        ),
        Format(
            name="executorch",
            file="model.pte",
            runtimes=("executorch",),
            exporter="edgeseg.exporters.executorch_export:build",
            toolchain=("executorch.runtime",),
            precisions=("fp32", "int8"),
            precision_note="executorch programs are delegated to XNNPACK as fp32 or int8: use fp32",
            quantizer="pt2e",
            fixed_shape=True,
        ),
        Format(
            name="litert",
            file="model.tflite",
            runtimes=("litert",),
            exporter="edgeseg.exporters.litert_export:build",
            toolchain=("litert_torch", "ai_edge_litert.interpreter"),
            precisions=("fp32", "int8"),
            precision_note="litert models are built as fp32 or int8 (GPU delegates run fp32 models in fp16 "
            "themselves): use fp32",
            quantizer="pt2e",
            fixed_shape=True,
        ),
        Format(
            name="coreml",
            file="model.mlpackage",
            runtimes=("coreml",),
            exporter="edgeseg.exporters.coreml_export:build",
            toolchain=("coremltools",),
            precisions=("fp16", "int8"),
            precision_note="Core ML ML programs compute in fp16 on the Neural Engine and GPU: use fp16 "
            "(or int8 for 8-bit weights)",
            verifier="edgeseg.exporters.coreml_export:verify",
            fixed_shape=True,
        ),
    ],
    "export format",
)

FORMAT_NAMES = tuple(FORMATS)
RUNTIME_NAMES = tuple(RUNTIMES)

# An edgeseg checkpoint is not an export format, but PyTorch benches it as the reference.
CHECKPOINT_SUFFIX = ".pt"
REFERENCE_FORMAT = "pytorch"


def get_format(name: str) -> Format:
    return lookup(FORMATS, name, "export format")


def get_runtime(name: str) -> Runtime:
    return lookup(RUNTIMES, name, "runtime")


def runtimes_for_suffix() -> dict[str, tuple[str, ...]]:
    """File suffix -> the runtimes that can open it (the first by default)."""
    table: dict[str, tuple[str, ...]] = {}
    for fmt in FORMATS.values():
        table[fmt.suffix] = tuple(dict.fromkeys((*table.get(fmt.suffix, ()), *fmt.runtimes)))
    return {**table, CHECKPOINT_SUFFIX: ("torch",)}


def toolchain(fmt: Format) -> list[tuple[str, str]]:
    """(module, install command) for everything building and verifying ``fmt`` needs."""
    return [(module, TOOLS[module][1]) for module in fmt.toolchain]


def packages() -> tuple[str, ...]:
    """The distributions of every format's toolchain and every runtime (for recorded versions)."""
    names = [TOOLS[m][0] for f in FORMATS.values() for m in f.toolchain] + [r.package for r in RUNTIMES.values()]
    return tuple(dict.fromkeys(names))


def entry_point(spec: str):
    """Import ``module:attribute`` (exporters and sessions load only when used)."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def cli_help(names: tuple[str, ...]) -> str:
    """ "a, b or c" for help strings."""
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
