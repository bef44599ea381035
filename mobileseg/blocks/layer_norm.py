"""Layer normalization written so that it converts to int8 TFLite ops only.

Ba, Kiros and Hinton, "Layer Normalization", 2016. Keras' own ``LayerNormalization`` computes
``-mean`` with a NEG op that stays float in a full-integer model, leaving a
DEQUANTIZE/QUANTIZE island in the graph; `LayerNorm` does not.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mobileseg")
class LayerNorm(keras.layers.LayerNormalization):
    """Layer normalization written so that it converts to int8 TFLite ops only.

    Paper: "Layer Normalization" (Ba, Kiros and Hinton, 2016). Same arguments, weights and
    result as `keras.layers.LayerNormalization` (its docstring lists the Args; typically
    ``LayerNorm(epsilon=1e-5)`` over the channels of an NHWC map). Only the arithmetic
    differs: ``(x - mean) * rsqrt(var + eps) * gamma + beta`` converts to MEAN, SUB, MUL,
    ADD and RSQRT, which all have int8 kernels, where Keras' form needs a NEG op that the
    full-integer converter leaves in float.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(1, 4, 4, 8)).astype("float32")
        >>> ours, keras_own = LayerNorm(epsilon=1e-5), keras.layers.LayerNormalization(epsilon=1e-5)
        >>> bool(np.allclose(ours(x), keras_own(x), atol=1e-5)), tuple(ours(x).shape)
        (True, (1, 4, 4, 8))
    """

    def call(self, inputs):
        if self.rms_scaling:
            return super().call(inputs)
        x = ops.cast(inputs, "float32")  # like Keras: at least float32 under mixed precision
        centered = x - ops.mean(x, axis=self.axis, keepdims=True)
        variance = ops.mean(centered * centered, axis=self.axis, keepdims=True)
        outputs = centered * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            outputs = outputs * self._broadcast(self.gamma, x.shape)
        if self.center:
            outputs = outputs + self._broadcast(self.beta, x.shape)
        return ops.cast(outputs, self.compute_dtype)

    def _broadcast(self, weight, shape):
        if self.axis in ([len(shape) - 1], [-1]):
            return weight
        target = [1] * len(shape)
        for axis in self.axis:
            target[axis] = shape[axis]
        return ops.reshape(weight, target)

