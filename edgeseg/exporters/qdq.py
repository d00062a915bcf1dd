"""Q/DQ ONNX graph rewrites that change no value but decide whether runtimes use int8 kernels.

Both rewrites are exact: the rewritten graph computes bit-identical outputs (tested).
"""

from __future__ import annotations

import numpy as np


def constants_to_initializers(graph) -> None:
    """``Constant`` nodes become initializers, where graph rewrites (and ORT's fusions) find them."""
    from onnx import numpy_helper

    for node in list(graph.node):
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0]))
            graph.node.remove(node)


def fold_weight_quantizers(model) -> int:
    """Replace ``QuantizeLinear`` of a constant (the weights) by its precomputed int8 tensor.

    NNCF exports weights as float -> Q -> DQ; the standard (and what TensorRT and ORT's
    quantized-op fusions expect) is an int8 initializer -> DQ. Also quarters the weight size.
    """
    from onnx import numpy_helper

    graph = model.graph
    constants_to_initializers(graph)
    inits = {i.name: i for i in graph.initializer}
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or not all(n in inits for n in node.input[:3]):
            continue
        x, scale, zero = (numpy_helper.to_array(inits[n]) for n in node.input[:3])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        info = np.iinfo(zero.dtype)
        q = np.clip(np.rint(x / scale) + zero.astype(np.int32), info.min, info.max).astype(zero.dtype)
        graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    return len(folded)


def activations_to_uint8(model) -> int:
    """Rewrite int8 activation Q/DQ (zero point z) as uint8 (zero point z + 128): same values.

    ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv only when the input and output types
    agree, and its x86 kernels are u8 activations x s8 weights. NNCF quantizes activations after
    ReLU unsigned and the rest signed, so most convolutions would stay in float. Weights (DQ of
    an initializer) stay int8. Not for TensorRT, which accepts only signed symmetric int8.
    """
    from onnx import numpy_helper

    graph = model.graph
    constants_to_initializers(graph)
    inits = {i.name: i for i in graph.initializer}
    added: dict[str, object] = {}
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            continue  # a weight
        zero = inits.get(node.input[2])
        if zero is None:
            continue
        value = numpy_helper.to_array(zero)
        if value.dtype != np.int8:
            continue
        name = f"{node.input[2]}_as_uint8"
        if name not in added:
            added[name] = numpy_helper.from_array((value.astype(np.int16) + 128).astype(np.uint8), name)
        node.input[2] = name
    graph.initializer.extend(added.values())
    _drop_unused_initializers(graph)
    return len(added)


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
