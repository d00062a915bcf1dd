"""Q/DQ ONNX graph rewrites that change no value but decide whether runtimes use int8 kernels.

``fold_weight_quantizers`` and ``activations_to_uint8`` are exact: bit-identical outputs
(tested). ``scalars_into_quantizers`` is exact up to float rounding of one scale per node.
"""

from __future__ import annotations

import numpy as np


def constants_to_initializers(graph) -> None:
    """``Constant`` nodes become initializers, where graph rewrites (and ORT's fusions) find them."""
    from onnx import numpy_helper

    for node in list(graph.node):
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            graph.initializer.append(
                numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
            )
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


def scalars_into_quantizers(model) -> dict:
    """Let ONNX Runtime run HardSwish's pieces in int8 (QLinearAdd, QLinearMul).

    A decomposed HardSwish exports as ``Q(DQ(x) * DQ(clip(DQ(x) + 3)) * (1/6))``. Two things
    keep ORT in float there:
    - ``DQ(x) + 3``: ORT fuses an Add into QLinearAdd only when *both* inputs are dequantized.
      The constant becomes ``DQ(255, scale=c/255)``, which is the same value.
    - ``* (1/6)`` directly before a Q: the Mul is dropped and the Q's scale divided by the
      constant. ``round(y*c/s) == round(y/(s/c))``.

    Measured on MobileNetV3-Large: 0.80-0.87x ORT fp32 latency with these, 1.23x without.
    """
    from onnx import numpy_helper

    graph = model.graph
    constants_to_initializers(graph)
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def positive_scalar(name: str) -> float | None:
        if name not in inits:
            return None
        value = numpy_helper.to_array(inits[name])
        return (
            float(value.ravel()[0]) if value.size == 1 and value.dtype == np.float32 and value.ravel()[0] > 0 else None
        )

    added, dropped, new_inits = 0, [], []
    for node in list(graph.node):
        if node.op_type == "Add" and len(node.input) == 2:
            x, c = node.input
            value = positive_scalar(c)
            if value is not None and x in producer and producer[x].op_type == "DequantizeLinear":
                new_inits += _dequantized_constant(graph, node, value)
                added += 1
        elif node.op_type == "Mul" and len(node.input) == 2 and node.output[0] not in outputs:
            y, c = node.input
            value = positive_scalar(c)
            after = users.get(node.output[0], [])
            if (
                value is None
                or len(after) != 1
                or after[0].op_type != "QuantizeLinear"
                or after[0].input[1] not in inits
            ):
                continue
            new_inits.append(_fold_into_scale(after[0], y, value, inits, len(dropped)))
            dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph)
    return {"add_constants_dequantized": added, "mul_constants_folded_into_scale": len(dropped)}


def _dequantized_constant(graph, add, value: float) -> list:
    """Feed ``add`` its positive scalar as ``DQ(255, scale=value/255)``; returns the new initializers."""
    from onnx import helper, numpy_helper

    base = f"{add.name or add.output[0]}/constant"
    dq = helper.make_node(
        "DequantizeLinear", [f"{base}_q", f"{base}_scale", f"{base}_zero"], [f"{base}_dq"], name=f"{base}_DQ"
    )
    graph.node.insert(list(graph.node).index(add), dq)
    add.input[1] = f"{base}_dq"
    return [
        numpy_helper.from_array(np.array(255, np.uint8), f"{base}_q"),
        numpy_helper.from_array(np.array(value / 255, np.float32), f"{base}_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), f"{base}_zero"),
    ]


def _fold_into_scale(quantize, y: str, value: float, inits: dict, index: int):
    """``Q(y * value)`` -> ``Q(y)`` with its scale divided by ``value``; returns the new scale."""
    from onnx import numpy_helper

    scale = numpy_helper.to_array(inits[quantize.input[1]]) / np.float32(value)
    name = f"{quantize.input[1]}/{index}"
    quantize.input[0], quantize.input[1] = y, name
    return numpy_helper.from_array(scale.astype(np.float32), name)


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
