"""Evaluate a Core ML ML program's MIL graph with PyTorch ops: a graph-level check on machines
where Apple's runtime does not exist (it runs models on macOS only).

What it checks: that the converted program (its ops, their attributes and the weights as
stored: fp16, or 8-bit with their scales) computes what the PyTorch model computes. Each op's
output is rounded to fp16 where the program stores fp16, as Core ML's GPU and Neural Engine
do. What it does not check: Apple's kernels, their accumulation order, or the Neural Engine's
own numerics. Ops outside ``OPS`` are refused by name (nothing is guessed); the export then
says the graph could not be evaluated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _cast(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """fp16 values are kept as float32 holding fp16-representable numbers (see ``run``)."""
    if dtype == "fp16":
        return x.float().half().float()
    if dtype == "fp32":
        return x.float()
    if dtype in ("int32", "int16", "uint8", "int8"):
        return x.to(torch.int32)
    raise UnsupportedOp(f"cast to {dtype}")


class UnsupportedOp(Exception):
    """The program uses an op this evaluator does not implement."""


def load_program(package: Path):
    """The MIL program saved in an ``.mlpackage`` (the weights read from the package)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    weights = package / "Data" / "com.apple.CoreML" / "weights"
    return load(spec, spec.specificationVersion, file_weights_dir=str(weights))


def _conv(a):
    x, weight = a["x"], a["weight"]
    pad_type = a.get("pad_type", "valid")
    if pad_type == "custom":
        top, bottom, left, right = (int(p) for p in a["pad"])
        x = F.pad(x, (left, right, top, bottom))
    elif pad_type == "same":
        raise UnsupportedOp("conv pad_type same")
    groups = int(a.get("groups", 1))
    return F.conv2d(
        x, weight, a.get("bias"), tuple(int(s) for s in a["strides"]), 0, tuple(int(d) for d in a["dilations"]), groups
    )


def _resize(a):
    modes = {"UNALIGN_CORNERS": False, "ALIGN_CORNERS": True, "STRICT_ALIGN_CORNERS": True}
    mode = str(a.get("sampling_mode", "DEFAULT"))
    if mode not in modes:
        raise UnsupportedOp(f"resize_bilinear sampling_mode {mode}")
    size = (int(a["target_size_height"]), int(a["target_size_width"]))
    return F.interpolate(a["x"], size=size, mode="bilinear", align_corners=modes[mode])


def _upsample(a):
    if bool(a.get("half_pixel_centers", not bool(a.get("align_corners", False)))) == bool(a.get("align_corners")):
        raise UnsupportedOp("upsample_bilinear with half_pixel_centers equal to align_corners")
    scale = (float(a["scale_factor_height"]), float(a["scale_factor_width"]))
    return F.interpolate(a["x"], scale_factor=scale, mode="bilinear", align_corners=bool(a.get("align_corners")))


def _dequantize(a):
    shape = [1] * a["quantized_data"].dim()
    axis = int(a["axis"])
    shape[axis] = -1
    scale, zero = a["scale"].float(), a["zero_point"].float()
    if scale.dim():
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((a["quantized_data"].float() - zero) * scale).half().float()


OPS = {
    "cast": lambda a: _cast(a["x"], str(a["dtype"])),
    "add": lambda a: a["x"] + a["y"],
    "sub": lambda a: a["x"] - a["y"],
    "mul": lambda a: a["x"] * a["y"],
    "real_div": lambda a: a["x"] / a["y"],
    "maximum": lambda a: torch.maximum(a["x"], a["y"]),
    "minimum": lambda a: torch.minimum(a["x"], a["y"]),
    "relu": lambda a: F.relu(a["x"]),
    "relu6": lambda a: a["x"].clamp(0, 6),
    "clip": lambda a: a["x"].clamp(float(a["alpha"]), float(a["beta"])),
    "sigmoid": lambda a: torch.sigmoid(a["x"]),
    "sigmoid_hard": lambda a: (float(a["alpha"]) * a["x"] + float(a["beta"])).clamp(0, 1),
    "thresholded_relu": lambda a: torch.where(a["x"] >= float(a["alpha"]), a["x"], torch.zeros_like(a["x"])),
    "silu": lambda a: F.silu(a["x"]),
    "conv": _conv,
    "reduce_mean": lambda a: a["x"].mean(dim=tuple(int(d) for d in a["axes"]), keepdim=bool(a["keep_dims"])),
    "reduce_argmax": lambda a: a["x"].argmax(dim=int(a["axis"]), keepdim=bool(a["keep_dims"])).to(torch.int32),
    "upsample_bilinear": _upsample,
    "resize_bilinear": _resize,
    "concat": lambda a: torch.cat(list(a["values"]), dim=int(a["axis"])),
    "reshape": lambda a: a["x"].reshape(tuple(int(s) for s in a["shape"])),
    "transpose": lambda a: a["x"].permute(*(int(p) for p in a["perm"])),
    "constexpr_affine_dequantize": _dequantize,
}


def _value(var, env: dict):
    if isinstance(var, (list, tuple)):
        return [_value(v, env) for v in var]
    if var.name in env:
        return env[var.name]
    if var.val is None:
        raise UnsupportedOp(f"input {var.name} has no value")
    value = var.val
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.array(value))
        return tensor.float() if tensor.dtype == torch.float16 else tensor
    return value


@torch.no_grad()
def run(program, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The program's first output for ``inputs`` (name -> array).

    Arithmetic is float32; every output the program stores as fp16 is rounded to fp16, so the
    result carries the program's fp16 weights and activations (not Apple's accumulation order).
    """
    from coremltools.converters.mil.mil import types

    function = program.functions["main"]
    env = {name: torch.from_numpy(np.ascontiguousarray(array)).float() for name, array in inputs.items()}
    for op in function.operations:
        if op.op_type == "const":
            continue
        if op.op_type not in OPS:
            raise UnsupportedOp(op.op_type)
        out = OPS[op.op_type]({name: _value(var, env) for name, var in op.inputs.items()})
        if op.outputs[0].dtype == types.fp16:
            out = out.half().float()
        env[op.outputs[0].name] = out
    return env[function.outputs[0].name].numpy()


class ProgramSession:
    """The session interface over a package's MIL program (``verify`` and the benchmark use it
    where Apple's runtime cannot run). Not a runtime: it is labelled as a graph-level check."""

    def __init__(self, package: Path):
        self.program = load_program(package)
        self.input_name = next(iter(self.program.functions["main"].inputs))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([run(self.program, {self.input_name: item[None]}) for item in batch])
