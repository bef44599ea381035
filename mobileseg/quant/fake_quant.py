"""Fake quantization: 8-bit rounding in the float graph, exactly as TFLite will round.

Two kinds, following the TFLite int8 specification
(https://ai.google.dev/edge/litert/models/quantization_spec) and Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018:

- weights: `fake_quant_weights`, per output channel, symmetric, narrow range
  (int8 values -127..127, zero point 0, scale ``max|w| / 127`` per channel). It is
  written as round-and-clip with a straight-through gradient rather than with
  ``tf.quantization.fake_quant_with_min_max_vars_per_channel``: that op's
  per-axis type cannot follow the transpose the converter applies to a Dense kernel
  (``'tfl.transpose' op has mismatched quantized axes``). The converter then
  quantizes the weights itself, per channel with the same ``max|w| / 127`` scale,
  so the values the training saw are exactly the int8 values that ship.
- activations: `ActivationQuantizer`, per tensor, asymmetric, the range tracked by
  moving averages of each training batch's min and max (the ``MovingAverageQuantizer``
  of tensorflow-model-optimization, PyTorch's ``MovingAverageMinMaxObserver``), or
  fixed where TFLite fixes it (softmax and logistic outputs: scale 1/256; the uint8
  image input: [0, 255]). It emits ``FakeQuantWithMinMaxVars``, the op the TFLite
  converter reads ranges from. Two variants: ``symmetric`` keeps the range at
  ``[-128 s, 127 s]``, i.e. zero point 0 (XNNPACK's int8 BATCH_MATMUL needs that of its
  second operand), and ``clip`` bounds the tracked range (``(0, 6)``: the quantizer of a
  tensor that a ReLU6 follows, which then clamps as the ReLU6 would, so the ReLU6 op
  itself can go). `ConstantQuantizer` does the same for constant
  operands of element-wise ops (a positional embedding added to activations), whose
  range the converter takes from their values.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

NUM_BITS = 8
WEIGHT_LEVELS = 127  # narrow range: -127..127
SOFTMAX_RANGE = (0.0, 255.0 / 256.0)   # TFLite int8 SOFTMAX / LOGISTIC output: scale 1/256, zero point -128
TANH_RANGE = (-1.0, 127.0 / 128.0)     # TFLite int8 TANH output: scale 1/128, zero point 0
IMAGE_RANGE = (0.0, 255.0)             # the uint8 image input: scale 1, zero point 0 (uint8) / -128 (int8)
DEFAULT_DECAY = 0.999


def fake_quant_weights(kernel, axis: int = -1):
    """Round a kernel to the int8 grid TFLite will use: per channel along ``axis``, symmetric, narrow range.

    Forward: ``clip(round(w / s), -127, 127) * s`` with ``s = max|w| / 127`` over every
    axis but ``axis``. Backward: the identity (straight-through estimator).

    Args:
        kernel: float weights.
        axis: the output-channel axis.

    Example:
        >>> import numpy as np
        >>> w = np.array([[0.5, -2.0], [0.26, 1.0]], "float32")   # two output channels (columns)
        >>> np.asarray(fake_quant_weights(w) / (np.array([0.5, 2.0]) / 127)).round(3).tolist()
        [[127.0, -127.0], [66.0, 64.0]]
    """
    kernel = ops.convert_to_tensor(kernel)
    axis = axis % len(kernel.shape)
    reduce = tuple(a for a in range(len(kernel.shape)) if a != axis)
    max_abs = ops.max(ops.abs(kernel), axis=reduce, keepdims=True)
    scale = ops.maximum(max_abs, 1e-12) / WEIGHT_LEVELS
    rounded = ops.clip(ops.round(kernel / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS) * scale
    return kernel + ops.stop_gradient(rounded - kernel)


def valid_range(low, high):
    """``(low, high)`` widened to hold 0 and to be non-empty, as TFLite's asymmetric int8 needs.

    Example:
        >>> [float(v) for v in valid_range(0.5, 2.0)]
        [0.0, 2.0]
    """
    low = ops.minimum(ops.convert_to_tensor(low, "float32"), 0.0)
    high = ops.maximum(ops.convert_to_tensor(high, "float32"), 0.0)
    return low, ops.maximum(high, low + 1e-6)


def symmetric_range(low, high):
    """The range ``[-128 m / 127, m]``, ``m = max(-low, high)``: int8 zero point 0 and scale ``m / 127``.

    Example:
        >>> low, high = symmetric_range(-1.0, 2.54)
        >>> int8_parameters(float(low), float(high))
        (0.019999999552965164, 0)
    """
    magnitude = ops.maximum(-ops.convert_to_tensor(low, "float32"), ops.convert_to_tensor(high, "float32"))
    return -magnitude * (128.0 / 127.0), magnitude


def int8_parameters(low: float, high: float) -> tuple[float, int]:
    """The int8 (scale, zero point) TFLite gets from a fake-quantization range (TensorFlow's nudging).

    ``FakeQuantWithMinMaxVars`` moves the range so that 0 is exactly representable:
    scale ``(high - low) / 255`` and zero point ``round(-low / scale)`` on 0..255, which
    is ``- 128`` on int8; computed in float32 as TensorFlow's kernel does (a zero point
    of x.5 rounds the way float32 arithmetic lands).

    Example:
        >>> int8_parameters(0.0, 255.0), int8_parameters(-1.0, 2.0)
        ((1.0, -128), (0.0117647061124444, -43))
    """
    low, high = np.float32(low), np.float32(high)
    scale = (high - low) / np.float32(255.0)
    zero_from_min = np.float32(0.0) - low / scale
    if zero_from_min < 0:
        zero = 0
    elif zero_from_min > 255:
        zero = 255
    else:
        zero = int(np.floor(np.float32(zero_from_min) + np.float32(0.5)))
    return float(scale), zero - 128


def fake_quant(x, low, high):
    """Per-tensor 8-bit fake quantization of ``x`` to ``[low, high]`` (widened to hold 0), TFLite's rounding.

    The TensorFlow op ``FakeQuantWithMinMaxVars`` (what the TFLite converter reads
    ranges from), with its straight-through gradient inside the range.

    Example:
        >>> import numpy as np
        >>> [round(float(v), 4) for v in fake_quant(np.array([0.3, 1.7, 9.0], "float32"), 0.0, 2.55)]
        [0.3, 1.7, 2.55]
    """
    import tensorflow as tf

    low, high = valid_range(low, high)
    return tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=NUM_BITS, narrow_range=False)


@keras.saving.register_keras_serializable(package="mobileseg")
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor 8-bit fake quantization of an activation, at a point where TFLite keeps an int8 tensor.

    Paper: Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, Sec. 3.1 (ranges from exponential
    moving averages of batch min/max, fake quantization in the forward pass).

    Three modes, chosen by how the layer is called:

    - training (``training=True``): the range moves towards each batch's min and max
      by ``1 - decay`` (the first batch sets it), and the updated range quantizes;
    - calibration (`calibrate` sets ``observing``): the input passes unchanged and the
      range grows to the global min and max seen, as the TFLite calibrator does;
    - inference: the stored range quantizes (one ``FakeQuantWithMinMaxVars`` op).

    With ``fixed_range`` the range never moves (``FakeQuantWithMinMaxArgs``: a softmax
    output, the image input). The stored range always holds 0, as TFLite's asymmetric
    int8 does. A layer may be called on several tensors that TFLite gives one scale
    (the inputs and output of a concatenation): one call tracks (``track=True``), the
    others (``track=False``) only quantize with the range it tracks.

    Args:
        decay: weight of the old range in the moving average (0.999, tensorflow-model-optimization's
            default: a fine-tuning of an epoch or two moves the calibrated ranges only a few
            per cent; with 0.99 they drifted towards the augmented batches' extremes, and one
            epoch on CamVid ended 0.4 mIoU point lower: SeaFormer-T, 80 test images, 28.5 vs 28.9).
        fixed_range: (low, high), or None to track the range.
        symmetric: keep the tracked range symmetric (zero point 0).
        clip: (low, high) bounds of the tracked range (``high`` may be ``inf``), or None.

    Example:
        >>> import numpy as np
        >>> quantizer = ActivationQuantizer()
        >>> _ = quantizer(np.array([-1.0, 2.0], "float32"), training=True)
        >>> [round(float(v), 3) for v in (quantizer.range_min, quantizer.range_max)]
        [-1.0, 2.0]
        >>> [round(float(v), 3) for v in quantizer(np.array([0.51, 5.0], "float32"))]
        [0.506, 2.0]
    """

    def __init__(self, decay: float = DEFAULT_DECAY, fixed_range: tuple[float, float] | None = None,
                 symmetric: bool = False, clip: tuple[float, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"{type(self).__name__}: decay must be in [0, 1), got {decay!r}")
        if clip is not None:
            clip = (float(clip[0]), float(clip[1]))
            if not clip[0] <= 0.0 < clip[1]:
                raise ValueError(f"{type(self).__name__}: clip must hold 0 and a positive end, got {clip}")
        if fixed_range is not None and (symmetric or clip is not None):
            raise ValueError(f"{type(self).__name__}: a fixed range is neither symmetric nor clipped")
        if fixed_range is not None:
            fixed_range = (float(fixed_range[0]), float(fixed_range[1]))
            if not fixed_range[0] <= 0.0 <= fixed_range[1] or fixed_range[0] == fixed_range[1]:
                raise ValueError(f"{type(self).__name__}: fixed_range must hold 0 and be non-empty, "
                                 f"got {fixed_range}")
        self.decay = decay
        self.fixed_range = fixed_range
        self.symmetric = bool(symmetric)
        self.clip = clip
        self.observing = False
        low, high = fixed_range or (0.0, 0.0)
        self.range_min = self.add_weight(name="range_min", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(low))
        self.range_max = self.add_weight(name="range_max", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(high))
        self.initialized = self.add_weight(name="initialized", shape=(), trainable=False,
                                           initializer=keras.initializers.Constant(float(fixed_range is not None)))

    def call(self, inputs, training=None, track=True):
        import tensorflow as tf

        if self.fixed_range is not None:
            low, high = self.fixed_range
            return tf.quantization.fake_quant_with_min_max_args(inputs, min=low, max=high, num_bits=NUM_BITS)
        if self.observing and not track:
            return self._clipped(inputs)
        if not (self.observing or training):
            return tf.quantization.fake_quant_with_min_max_vars(inputs, self.range_min.value, self.range_max.value,
                                                                num_bits=NUM_BITS)
        if not track:  # a tied use in training: the range another call of this layer tracks
            quantized = tf.quantization.fake_quant_with_min_max_vars(
                inputs, self.range_min.value, self.range_max.value, num_bits=NUM_BITS)
            return ops.where(self.initialized > 0.5, quantized, self._clipped(inputs))
        batch_min, batch_max = ops.min(inputs), ops.max(inputs)
        if self.clip is not None:
            batch_min, batch_max = (ops.clip(v, self.clip[0], self.clip[1]) for v in (batch_min, batch_max))
        first = self.initialized < 0.5
        if self.observing:  # the global range of float activations, as the TFLite calibrator
            low = ops.where(first, batch_min, ops.minimum(self.range_min, batch_min))
            high = ops.where(first, batch_max, ops.maximum(self.range_max, batch_max))
        else:
            low = ops.where(first, batch_min, self.decay * self.range_min + (1.0 - self.decay) * batch_min)
            high = ops.where(first, batch_max, self.decay * self.range_max + (1.0 - self.decay) * batch_max)
        low, high = valid_range(low, high)
        if self.symmetric:
            low, high = symmetric_range(low, high)
        self.range_min.assign(low)
        self.range_max.assign(high)
        self.initialized.assign(1.0)
        if self.observing:
            return self._clipped(inputs)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=NUM_BITS)

    def _clipped(self, inputs):
        return inputs if self.clip is None else ops.clip(inputs, self.clip[0], self.clip[1])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(decay=self.decay, fixed_range=self.fixed_range, symmetric=self.symmetric, clip=self.clip)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class ConstantQuantizer(keras.layers.Layer):
    """Per-tensor 8-bit fake quantization of a constant operand (a weight that meets activations).

    TFLite quantizes the constant operand of an int8 ADD or MUL (a positional
    embedding, a batch-norm scale applied outside a convolution) per tensor from its
    own min and max; this layer rounds it the same way, every step, from its current
    value.

    Example:
        >>> import numpy as np
        >>> [round(float(v), 4) for v in ConstantQuantizer()(np.array([0.0, 0.3, 2.55], "float32"))]
        [0.0, 0.3, 2.55]
    """

    def call(self, inputs):
        return fake_quant(inputs, ops.min(inputs), ops.max(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape


def quantizers(model) -> list[ActivationQuantizer]:
    """Every `ActivationQuantizer` of a model (searched through nested layers)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, ActivationQuantizer)]
