"""The rule tables of the quantization-aware rewrite (`mobileseg.quant.qat`): the TFLite int8 converter's and kernels'.

Which ops keep their input's scale, which have a range fixed by the kernel, which fuse a
following ReLU, which a ReLU commutes with, and the name the rules give a graph node's operation
(`op_kind`).
"""

from __future__ import annotations

import keras

from mobileseg.quant.fake_quant import SOFTMAX_RANGE, TANH_RANGE
from mobileseg.quant.folded import BatchNormTerms, WeightTensor

SAME_SCALE_OPS = frozenset({
    "Reshape", "Transpose", "GetItem", "Squeeze", "ExpandDims", "Take", "TakeAlongAxis", "Pad", "Max",
    "MaxPool", "AveragePool", "Resize", "Resizing", "Identity", "Cast", "Dropout", "SpatialDropout2D",
    "Tile", "Repeat", "BroadcastTo", "Split", "Slice", "Flatten", "Stack", "Unstack",
})
"""Ops whose TFLite int8 kernels keep the input's scale and zero point (no quantizer of their own)."""

FIXED_RANGE_OPS = {"Softmax": SOFTMAX_RANGE, "Sigmoid": SOFTMAX_RANGE, "Tanh": TANH_RANGE}
"""Ops whose TFLite int8 output range is fixed by the kernel."""

FUSING_PRODUCERS = frozenset({"FoldedConv", "Add", "Subtract", "Multiply", "BatchNormalization"})
"""Ops that TFLite fuses a following ReLU/ReLU6 into."""

WEIGHT_LAYERS = (WeightTensor, BatchNormTerms)

RELU_COMMUTING_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "ExpandDims", "Flatten"})
"""Layout ops a ReLU commutes with: a ReLU after a chain of them can act at the chain's start."""

RELU_BOUNDS = {"Relu": float("inf"), "Relu6": 6.0}


def op_kind(operation) -> str:
    """The name the quantization rules use for a graph node's operation.

    Plain ReLUs from `keras.activations` and `keras.ops` are both ``"Relu"``; a
    ReLU capped at 6 is ``"Relu6"``. Every batch normalization (Keras' or a subclass such
    as `mobileseg.blocks.batch_norm.BatchNorm`) is ``"BatchNormalization"``.

    Example:
        >>> op_kind(keras.layers.Dropout(0.1)), op_kind(keras.src.ops.nn.Relu6())
        ('Dropout', 'Relu6')
    """
    if isinstance(operation, keras.layers.BatchNormalization):
        return "BatchNormalization"
    name = type(operation).__name__
    if name == "ReLU" and not isinstance(operation, keras.layers.Layer):  # keras.activations.relu
        if not operation.negative_slope and not operation.threshold:
            if operation.max_value is None:
                return "Relu"
            if operation.max_value == 6.0:
                return "Relu6"
    return name
