"""Parameters and multiply-accumulates of a Keras model, per top-level layer.

MACs are counted on the traced TensorFlow graph at a fixed input size, so the
matrix products inside attention blocks count as well as convolutions. Counted,
as the papers' FLOP counters do: convolutions (regular, grouped, depthwise),
dense layers, batched matrix products and einsums; element-wise ops, pooling,
normalisation and resizing are not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import keras


COUNTED_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")


@dataclass(frozen=True)
class LayerCost:
    """Parameters and MACs of one top-level layer."""

    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int


def _op_macs(op) -> int:
    if op.type not in COUNTED_OPS:
        return 0
    out = op.outputs[0].shape
    if op.type == "Conv2D":
        kh, kw, cin, _ = op.inputs[1].shape
        return math.prod(out) * kh * kw * cin
    if op.type == "DepthwiseConv2dNative":
        kh, kw, _, _ = op.inputs[1].shape
        return math.prod(out) * kh * kw
    if op.type == "MatMul":
        a = op.inputs[0].shape
        depth = a[0] if op.get_attr("transpose_a") else a[1]
        return math.prod(out) * depth
    if op.type.startswith("BatchMatMul"):
        a = op.inputs[0].shape
        depth = a[-2] if op.get_attr("adj_x") else a[-1]
        return math.prod(out) * depth
    inputs, _ = op.get_attr("equation").decode().split("->")  # Einsum: product of every index's size
    sizes = {}
    for spec, tensor in zip(inputs.split(","), op.inputs, strict=True):
        sizes.update(zip(spec, tensor.shape))
    return math.prod(sizes.values())


def layer_costs(model: keras.Model) -> list[LayerCost]:
    """Per top-level layer: parameters and MACs at the model's (static) input size.

    Example:
        >>> inputs = keras.Input((8, 8, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs))
        >>> [(c.name, c.params, c.macs) for c in layer_costs(model) if c.name == "c"]
        [('c', 112, 6912)]
    """
    import tensorflow as tf

    specs = [tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype) for tensor in model.inputs]
    if any(dim is None for spec in specs for dim in spec.shape):
        raise ValueError("count MACs on a model built with a fixed input size")
    function = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
    graph = function.get_concrete_function(*specs).graph
    names = [layer.name for layer in model.layers]
    macs = dict.fromkeys(names, 0)
    pattern = re.compile(r"^(.*?)(_\d+)?$")
    for op in graph.get_operations():
        count = _op_macs(op)
        if not count:
            continue
        parts = op.name.split("/")
        scope = parts[1] if len(parts) > 1 else parts[0]
        owner = scope if scope in macs else pattern.match(scope).group(1)
        macs[owner if owner in macs else "<other>"] = macs.get(owner if owner in macs else "<other>", 0) + count
    costs = []
    for layer in model.layers:
        output = layer.output
        shape = tuple(output.shape) if hasattr(output, "shape") else tuple(tuple(o.shape) for o in output)
        costs.append(LayerCost(layer.name, type(layer).__name__, shape, layer.count_params(), macs[layer.name]))
    if macs.get("<other>"):
        costs.append(LayerCost("<other>", "ops outside layers", (), 0, macs["<other>"]))
    return costs


def total(costs: list[LayerCost]) -> tuple[int, int]:
    """(params, MACs) summed over ``layer_costs``."""
    return sum(c.params for c in costs), sum(c.macs for c in costs)


def params_and_macs(genotype, num_classes: int, input_size: tuple[int, int]) -> dict:
    """``{"params", "macs"}`` of the network a genotype builds at ``input_size``."""
    from mobileseg.arch.builder import build_model

    params, macs = total(layer_costs(build_model(genotype, num_classes, input_size)))
    return {"params": params, "macs": macs}
