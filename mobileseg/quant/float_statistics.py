"""The statistics of a normalisation, which quantization-aware training leaves in float.

A layer norm computes ``centered * rsqrt(mean(centered * centered) + epsilon)``; an L2
norm (token merging's similarity metric) ``x * rsqrt(sum(x * x) + epsilon)``. Quantized
like any other op, the square, the reduction, the sum and the RSQRT each get an int8
range, and the variance's cannot hold a trained network's spread of per-token variances:
SegFormer-B0 trained on CamVid reached a variance range of [0, 1547] (one int8 step about
6), so every token whose variance is below 3 rounds to 0 and its RSQRT is infinite. The
first quantization-aware step then makes the RSQRT's range infinite and every weight NaN
(reproduced on tokens of variance 1 beside tokens of variance 1600 in
``tests/quant/test_float_statistics.py``).

So these tensors carry no quantizer: the statistics are computed in float from the int8
input, and only the product with the RSQRT (the normalised value, bounded by
``sqrt(channels)``) is quantized. The export does the same in the file:
`mobileseg.deploy.xnnpack_int8` runs the same path as one float island inside the
XNNPACK partition (it matches the converted ops, this module the Keras graph, by the
same rule), so the int8 file computes what the quantization-aware model trained with.
"""

from __future__ import annotations

REDUCTIONS = frozenset({"Mean", "Sum"})
"""Reductions of a statistics path (a layer norm's variance; an L2 norm's sum of squares)."""


def float_statistics(nodes, consumers, output_ids) -> set[int]:
    """The ids of the flat-graph tensors of every normalisation statistics path (kept in float).

    A path is ``Multiply(t, t)`` -> `REDUCTIONS` -> ``Add`` of a Python constant ->
    ``Rsqrt`` whose every consumer is a ``Multiply``, each op the only consumer of the one
    before and no tensor a model output. The ids are the square's, the reduction's, the
    sum's and the RSQRT's outputs; the multiplies by the RSQRT are quantized as usual.

    Args:
        nodes: the nodes of a flat functional graph (`mobileseg.quant.flatten.flatten_model`).
        consumers: ``id(tensor)`` -> the nodes that take it.
        output_ids: ids of the model's output tensors.

    Example:
        >>> import keras
        >>> from mobileseg.blocks.layer_norm import LayerNorm
        >>> from mobileseg.quant.flatten import flatten_model
        >>> inputs = keras.Input((4, 4, 8))
        >>> flat = flatten_model(keras.Model(inputs, LayerNorm()(inputs)))
        >>> nodes = [n for depth in sorted(flat._nodes_by_depth, reverse=True) for n in flat._nodes_by_depth[depth]]
        >>> consumers = {}
        >>> for node in nodes:
        ...     for tensor in node.input_tensors:
        ...         consumers.setdefault(id(tensor), []).append(node)
        >>> kept = float_statistics(nodes, consumers, {id(t) for t in flat.outputs})
        >>> sorted(type(n.operation).__name__ for n in nodes if id(n.outputs[0]) in kept)
        ['Add', 'Mean', 'Multiply', 'Rsqrt']
    """
    def only_consumer(tensor, kinds):
        users = consumers.get(id(tensor), [])
        if len(users) == 1 and id(tensor) not in output_ids and type(users[0].operation).__name__ in kinds:
            return users[0]
        return None

    kept = set()
    for node in nodes:
        tensors = node.input_tensors
        if type(node.operation).__name__ != "Multiply" or len(tensors) != 2 or tensors[0] is not tensors[1]:
            continue
        reduction = only_consumer(node.outputs[0], REDUCTIONS)
        add = reduction is not None and only_consumer(reduction.outputs[0], ("Add",))
        if not add or len(add.input_tensors) != 1:  # the epsilon is a Python number, not a tensor
            continue
        rsqrt = only_consumer(add.outputs[0], ("Rsqrt",))
        users = consumers.get(id(rsqrt.outputs[0]), []) if rsqrt is not None else []
        if not users or id(rsqrt.outputs[0]) in output_ids or any(
                type(user.operation).__name__ != "Multiply" for user in users):
            continue
        kept.update(id(step.outputs[0]) for step in (node, reduction, add, rsqrt))
    return kept
