"""The layers a float model is rewritten into before quantization: folded convolutions and friends.

- `FoldedConv`: a convolution, depthwise convolution or dense layer with the batch
  normalization that follows it folded into its kernel and bias, and a ReLU/ReLU6
  fused, which is the one op TFLite runs (CONV_2D, DEPTHWISE_CONV_2D,
  FULLY_CONNECTED). With ``quantize_weights`` the *folded* kernel is fake-quantized
  per output channel, so training sees the int8 weights that ship.
- `WeightTensor`: a weight that a block uses directly in arithmetic (SeaFormer's
  positional embeddings, a residual gain), as a tensor in the functional graph.
- `BatchNormTerms`: the per-channel scale and offset of a batch normalization that
  no convolution precedes (TFLite runs it as MUL and ADD).

Batch normalization folding (Krishnamoorthi, "Quantizing deep convolutional networks
for efficient inference: A whitepaper", 2018, Sec. 3.2; Jacob et al., CVPR 2018,
Sec. 3.2): the statistics are **frozen** at the float model's moving mean and variance
for the whole of quantization-aware fine-tuning, while gamma and beta keep training.
That is the whitepaper's "freeze batch norm statistics" regime applied from the first
step: the folded weights in training are exactly those of inference (no batch/moving
statistics switch, no correction factor), and the tiny batches this machine trains
with (2 cores) give no useful batch statistics anyway.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mobileseg.quant.fake_quant import fake_quant_weights

KINDS = ("conv", "depthwise", "dense")
FUSED_ACTIVATIONS = ("none", "relu", "relu6")


@keras.saving.register_keras_serializable(package="mobileseg")
class FoldedConv(keras.layers.Layer):
    """Convolution (full, depthwise or dense) with batch normalization folded in and ReLU/ReLU6 fused.

    Paper: Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, Sec. 3.2 (batch normalization folding)
    and Fig. C.8; statistics frozen as in Krishnamoorthi's whitepaper (module docstring).

    With batch normalization, ``s = gamma / sqrt(moving_variance + epsilon)``, the kernel
    is ``kernel * s`` (per output channel) and the bias ``beta + (bias - moving_mean) * s``.

    Args:
        kind: ``"conv"`` (Conv2D), ``"depthwise"`` (DepthwiseConv2D) or ``"dense"`` (last axis).
        filters: output channels (conv, dense); ignored for depthwise.
        kernel_size, strides, padding, dilation_rate, depth_multiplier: as Keras' layers.
        use_bias: the layer has its own bias (before the batch normalization).
        batch_norm: a batch normalization is folded in (gamma, beta, moving statistics).
        epsilon: that batch normalization's epsilon.
        activation: fused activation, ``"none"``, ``"relu"`` or ``"relu6"``.
        quantize_weights: fake-quantize the folded kernel per output channel.

    Example:
        >>> import numpy as np
        >>> conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
        >>> bn = keras.layers.BatchNormalization(epsilon=1e-5)
        >>> x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
        >>> want = bn(conv(x), training=False)
        >>> folded = FoldedConv("conv", 4, 3, use_bias=False, batch_norm=True, epsilon=1e-5)
        >>> folded.build(x.shape)
        >>> folded.set_weights([conv.kernel.numpy(), *[w.numpy() for w in bn.weights]])
        >>> bool(np.allclose(folded(x), want, atol=1e-5))
        True
    """

    def __init__(self, kind: str, filters: int | None = None, kernel_size: int = 1, strides: int = 1,
                 padding: str = "same", dilation_rate: int = 1, depth_multiplier: int = 1, use_bias: bool = True,
                 batch_norm: bool = False, epsilon: float = 1e-3, activation: str = "none",
                 quantize_weights: bool = False, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"{type(self).__name__}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if activation not in FUSED_ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}: activation must be one of {', '.join(FUSED_ACTIVATIONS)}, "
                             f"got {activation!r}")
        if kind != "depthwise" and not filters:
            raise ValueError(f"{type(self).__name__}: a {kind} layer needs filters")
        self.kind = kind
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate)
        self.depth_multiplier = depth_multiplier
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.epsilon = epsilon
        self.activation = activation
        self.quantize_weights = quantize_weights

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if self.kind == "conv":
            shape, out = (*self.kernel_size, channels, self.filters), self.filters
        elif self.kind == "depthwise":
            shape, out = (*self.kernel_size, channels, self.depth_multiplier), channels * self.depth_multiplier
        else:
            shape, out = (channels, self.filters), self.filters
        self.out_channels = out
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(out,), initializer="zeros") if self.use_bias else None
        if self.batch_norm:
            self.gamma = self.add_weight(name="gamma", shape=(out,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(out,), initializer="zeros")
            self.moving_mean = self.add_weight(name="moving_mean", shape=(out,), initializer="zeros",
                                               trainable=False)
            self.moving_variance = self.add_weight(name="moving_variance", shape=(out,), initializer="ones",
                                                   trainable=False)

    def folded_kernel_and_bias(self):
        """The kernel and bias inference uses: batch normalization folded in, weights not yet rounded."""
        kernel = ops.convert_to_tensor(self.kernel)
        bias = ops.convert_to_tensor(self.bias) if self.bias is not None else ops.zeros((self.out_channels,))
        if self.batch_norm:
            scale = self.gamma * ops.rsqrt(self.moving_variance + self.epsilon)
            bias = self.beta + (bias - self.moving_mean) * scale
            kernel = kernel * ops.reshape(scale, self._channel_shape())
        return kernel, bias

    def _channel_shape(self):
        """How a per-output-channel vector broadcasts against the kernel."""
        if self.kind == "depthwise":
            return (1, 1, -1, self.depth_multiplier)
        return (1,) * (len(self.kernel.shape) - 1) + (-1,)

    def quantized_kernel(self, kernel):
        """Fake-quantize a (folded) kernel per output channel, in TFLite's channel order."""
        if self.kind != "depthwise":
            return fake_quant_weights(kernel, axis=-1)
        shape = ops.shape(kernel)
        flat = ops.reshape(kernel, (shape[0], shape[1], -1))  # output channel c * multiplier + m
        return ops.reshape(fake_quant_weights(flat, axis=-1), shape)

    def call(self, inputs):
        kernel, bias = self.folded_kernel_and_bias()
        if self.quantize_weights:
            kernel = self.quantized_kernel(kernel)
        if self.kind == "conv":
            x = ops.conv(inputs, kernel, strides=self.strides, padding=self.padding,
                         dilation_rate=self.dilation_rate)
        elif self.kind == "depthwise":
            x = ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                   dilation_rate=self.dilation_rate)
        else:
            x = ops.matmul(inputs, kernel)
        x = x + bias
        if self.activation == "relu":
            return ops.relu(x)
        if self.activation == "relu6":
            return ops.relu6(x)
        return x

    def compute_output_shape(self, input_shape):
        if self.kind == "dense":
            return (*input_shape[:-1], self.filters)
        out = self.filters if self.kind == "conv" else input_shape[-1] * self.depth_multiplier
        spatial = []
        for size, kernel, stride, dilation in zip(input_shape[1:3], self.kernel_size, self.strides,
                                                  self.dilation_rate):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // stride))
            else:
                spatial.append((size - dilation * (kernel - 1) - 1) // stride + 1)
        return (input_shape[0], *spatial, out)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      padding=self.padding, dilation_rate=self.dilation_rate,
                      depth_multiplier=self.depth_multiplier, use_bias=self.use_bias, batch_norm=self.batch_norm,
                      epsilon=self.epsilon, activation=self.activation, quantize_weights=self.quantize_weights)
        return config


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value), int(value))


@keras.saving.register_keras_serializable(package="mobileseg")
class WeightTensor(keras.layers.Layer):
    """A weight as a tensor of the functional graph; called on any tensor of the graph (ignored) to place it.

    A block that uses a weight directly in arithmetic (``q + pos_embedding``,
    ``gamma * x``) is rewritten to take it from this layer, so the rewritten model
    owns, trains and saves it.

    Args:
        shape: the weight's shape.
        trainable_value: whether the weight trains.

    Example:
        >>> import numpy as np
        >>> layer = WeightTensor((2,))
        >>> _ = layer.value.assign([1.0, 2.0])
        >>> np.asarray(layer(np.zeros((1, 3), "float32"))).tolist()
        [1.0, 2.0]
    """

    def __init__(self, shape, trainable_value: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.value_shape = tuple(int(d) for d in shape)
        self.trainable_value = trainable_value
        self.value = self.add_weight(name="value", shape=self.value_shape, initializer="zeros",
                                     trainable=trainable_value)

    def call(self, anchor):
        return ops.convert_to_tensor(self.value)

    def compute_output_spec(self, anchor):
        return keras.KerasTensor(self.value_shape, dtype=self.value.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(shape=self.value_shape, trainable_value=self.trainable_value)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class BatchNormTerms(keras.layers.Layer):
    """The scale and offset of an inference batch normalization, statistics frozen: ``x * scale + offset``.

    For a batch normalization no convolution precedes (pre-activation blocks); TFLite
    runs it as an int8 MUL and ADD with these constants. Called on the normalized
    tensor (only for its place in the graph), returns ``[scale, offset]``.

    Args:
        channels: normalized channels.
        epsilon: the batch normalization's epsilon.
        center, scale: as Keras' BatchNormalization (beta, gamma present).

    Example:
        >>> import numpy as np
        >>> bn = keras.layers.BatchNormalization(epsilon=1e-5)
        >>> x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
        >>> _ = bn(x)
        >>> terms = BatchNormTerms(3, epsilon=1e-5)
        >>> terms.set_weights(bn.get_weights())
        >>> scale, offset = terms(x)
        >>> bool(np.allclose(x * scale + offset, bn(x, training=False), atol=1e-5))
        True
    """

    def __init__(self, channels: int, epsilon: float = 1e-3, center: bool = True, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        shape = (self.channels,)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones") if scale else None
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros") if center else None
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=shape, initializer="ones",
                                               trainable=False)

    def call(self, anchor):
        factor = ops.rsqrt(self.moving_variance + self.epsilon)
        if self.gamma is not None:
            factor = factor * self.gamma
        offset = -self.moving_mean * factor
        if self.beta is not None:
            offset = offset + self.beta
        return [factor, offset]

    def compute_output_spec(self, anchor):
        return [keras.KerasTensor((self.channels,)), keras.KerasTensor((self.channels,))]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, epsilon=self.epsilon, center=self.center, scale=self.scale)
        return config


def normalization_as_depthwise(mean, variance, epsilon: float, name: str, pixels: int = 1) -> FoldedConv:
    """Keras' ``Normalization`` ``(x - mean) / max(sqrt(variance), epsilon)`` as a frozen 1x1 depthwise conv.

    One int8 DEPTHWISE_CONV_2D per pixel instead of a SUB and a MUL; each channel's
    single weight is exact on the per-channel int8 grid. With ``pixels > 1`` the conv
    normalizes ``pixels`` neighbouring pixels at once (weights and biases tiled): applied
    to the image reshaped from ``[1, H, W, 3]`` to ``[1, H, W / pixels, 3 * pixels]``, the
    same memory, it computes the same values with ``3 * pixels`` channels, which XNNPACK
    vectorizes: a 3-channel depthwise conv uses a fraction of each SIMD register (measured
    at 360x480, fp32 and int8 alike: 0.6 ms with 3 channels, 0.1 ms with 48).

    Example:
        >>> import numpy as np
        >>> layer = normalization_as_depthwise([1.0, 2.0], [4.0, 16.0], 1e-7, "normalize")
        >>> np.asarray(layer(np.array([[[[3.0, 6.0]]]], "float32"))).tolist()
        [[[[1.0, 1.0]]]]
        >>> pair = normalization_as_depthwise([1.0, 2.0], [4.0, 16.0], 1e-7, "normalize", pixels=2)
        >>> np.asarray(pair(np.array([[[[3.0, 6.0, 1.0, 2.0]]]], "float32"))).tolist()
        [[[[1.0, 1.0, 0.0, 0.0]]]]
    """
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(variance, np.float32).reshape(-1)), epsilon)
    layer = FoldedConv("depthwise", kernel_size=1, use_bias=True, name=name, trainable=False)
    layer.build((None, None, None, mean.size * pixels))
    layer.set_weights([np.tile(1.0 / std, pixels).reshape(1, 1, -1, 1), np.tile(-mean / std, pixels)])
    return layer
