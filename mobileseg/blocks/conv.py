"""Convolution blocks: conv-BN-activation, squeeze-excite, inverted residual; the blocks' shared helpers.

The zoomed conv is `mobileseg.blocks.zoomed_conv`, the patch embedding
`mobileseg.blocks.patch_embed`, the int8-only layer norm `mobileseg.blocks.layer_norm`.

Conventions shared with every block module:

- NHWC tensors, ``padding="same"`` (a stride-s layer gives ``ceil(H / s)``);
- batch normalization is `mobileseg.blocks.batch_norm` (PyTorch's defaults, the fused
  kernel in training);
- convolutions without a following classifier role start from He-normal fan-out
  initialization, as those references do.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from mobileseg.blocks.activations import get_activation
from mobileseg.blocks.batch_norm import batch_norm

GATES = ("hard_sigmoid", "sigmoid")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10 % down.

    The rounding of the TensorFlow MobileNet code (slim ``_make_divisible``), used by
    MobileNetV3 for its squeeze-excite widths and by SeaFormer for its stage widths.

    Args:
        value: the channel count before rounding.
        divisor: the multiple to round to.
        min_value: the smallest result (default: ``divisor``).

    Example:
        >>> make_divisible(18), make_divisible(30), make_divisible(4), make_divisible(120 * 0.25)
        (24, 32, 8, 32)
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_initializer() -> keras.initializers.Initializer:
    """He-normal fan-out initialization (PyTorch ``kaiming_normal_(mode="fan_out")``)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def get_gate(name: str) -> Callable:
    """The gating function for ``name``: ``"hard_sigmoid"`` (ReLU6(x + 3) / 6) or ``"sigmoid"``.

    Example:
        >>> float(get_gate("hard_sigmoid")(0.0))
        0.5
        >>> get_gate("tanh")
        Traceback (most recent call last):
        ...
        ValueError: unknown gate 'tanh'; expected one of hard_sigmoid, sigmoid
    """
    if name not in GATES:
        raise ValueError(f"unknown gate {name!r}; expected one of {', '.join(GATES)}")
    return keras.activations.hard_sigmoid if name == "hard_sigmoid" else keras.activations.sigmoid


def check_positive_int(owner: str, name: str, value) -> None:
    """Raise a ValueError naming ``owner`` and ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def check_odd_kernel(owner: str, kernel_size) -> None:
    """Raise a ValueError unless ``kernel_size`` is an odd positive int (1, 3, 5, 7, ...)."""
    check_positive_int(owner, "kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"{owner}: kernel_size must be odd (1, 3, 5, 7, ...), got {kernel_size}")


def check_strides(owner: str, strides) -> None:
    """Raise a ValueError unless ``strides`` is 1 or 2 (the strides every block of the space takes)."""
    if strides not in (1, 2):
        raise ValueError(f"{owner}: strides must be 1 or 2, got {strides!r}")


@keras.saving.register_keras_serializable(package="mobileseg")
class ConvBNAct(keras.layers.Layer):
    """Convolution (full or depthwise), batch normalization, activation.

    Paper: "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Sandler, Howard, Zhu,
    Zhmoginov and Chen, 2018): the conv-BN-activation unit all its layers are made of.

    Args:
        filters: output channels; for ``depthwise=True`` it must equal the input channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        depthwise: a depthwise convolution (one filter per channel) instead of a full one.
        activation: an activation name of `mobileseg.blocks.activations` (``"none"`` for linear).
        use_bn: batch normalization after the convolution; the convolution has a bias only without it.
        dilation_rate: dilation of the kernel; must be 1 when ``strides > 1``.

    Example:
        >>> import numpy as np
        >>> layer = ConvBNAct(16, kernel_size=3, strides=2)
        >>> tuple(layer(np.zeros((1, 32, 32, 8), "float32")).shape)
        (1, 16, 16, 16)
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, depthwise: bool = False,
                 activation: str = "relu", use_bn: bool = True, dilation_rate: int = 1, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "filters", filters)
        check_positive_int(owner, "kernel_size", kernel_size)
        check_positive_int(owner, "strides", strides)
        check_positive_int(owner, "dilation_rate", dilation_rate)
        if strides > 1 and dilation_rate > 1:
            raise ValueError(f"{owner}: strides={strides} and dilation_rate={dilation_rate} "
                             "cannot both exceed 1")
        self._activation = get_activation(activation)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.depthwise = depthwise
        self.activation = activation
        self.use_bn = use_bn
        self.dilation_rate = dilation_rate
        if depthwise:
            self.conv = keras.layers.DepthwiseConv2D(
                kernel_size, strides=strides, padding="same", dilation_rate=dilation_rate,
                use_bias=not use_bn, depthwise_initializer=conv_initializer(), name="conv", dtype=self.dtype_policy)
        else:
            self.conv = keras.layers.Conv2D(
                filters, kernel_size, strides=strides, padding="same", dilation_rate=dilation_rate,
                use_bias=not use_bn, kernel_initializer=conv_initializer(), name="conv", dtype=self.dtype_policy)
        self.bn = batch_norm(dtype=self.dtype_policy) if use_bn else None

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.depthwise and channels != self.filters:
            raise ValueError(f"{type(self).__name__}: a depthwise convolution keeps the channel count, "
                             f"but filters={self.filters} and the input has {channels} channels")
        self.conv.build(input_shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self._activation(x)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      depthwise=self.depthwise, activation=self.activation, use_bn=self.use_bn,
                      dilation_rate=self.dilation_rate)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excite channel gating, MobileNetV3's variant.

    Paper: "Searching for MobileNetV3" (Howard et al., 2019), Sec. 5.3 "Large
    squeeze-and-excite". Global average pool, 1x1 conv to ``reduced_filters`` + activation,
    1x1 conv back to the input channels, gate, and the input scaled channel-wise by the
    gate. Both 1x1 convs have a bias (no BN), as in torchvision's ``SqueezeExcitation``.

    Args:
        reduced_filters: the squeeze width; MobileNetV3 uses ``make_divisible(channels / 4)``.
        activation: activation after the squeeze conv.
        gate: ``"hard_sigmoid"`` (MobileNetV3) or ``"sigmoid"`` (the original SE-Net).

    Example:
        >>> import numpy as np
        >>> tuple(SqueezeExcite(8)(np.ones((1, 8, 8, 32), "float32")).shape)
        (1, 8, 8, 32)
    """

    def __init__(self, reduced_filters: int, activation: str = "relu", gate: str = "hard_sigmoid", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "reduced_filters", reduced_filters)
        self._activation = get_activation(activation)
        self._gate = get_gate(gate)
        self.reduced_filters = reduced_filters
        self.activation = activation
        self.gate = gate
        self.reduce = keras.layers.Conv2D(reduced_filters, 1, name="reduce", dtype=self.dtype_policy)
        self.expand = None

    def build(self, input_shape):
        channels = input_shape[-1]
        self.expand = keras.layers.Conv2D(channels, 1, name="expand", dtype=self.dtype_policy)
        self.reduce.build((input_shape[0], 1, 1, channels))
        self.expand.build((input_shape[0], 1, 1, self.reduced_filters))

    def call(self, inputs):
        scale = ops.mean(inputs, axis=(1, 2), keepdims=True)
        scale = self._gate(self.expand(self._activation(self.reduce(scale))))
        return inputs * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(reduced_filters=self.reduced_filters, activation=self.activation, gate=self.gate)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class MBConv(keras.layers.Layer):
    """Inverted residual block (MBConv) with optional squeeze-excite.

    Papers: "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Sandler et al., 2018),
    Sec. 3.3 "Inverted residuals"; "Searching for MobileNetV3" (Howard et al., 2019), the SE
    inside the block. 1x1 expansion conv-BN-act (left out when the hidden width equals the
    input width), kxk depthwise conv-BN-act with the stride, optional squeeze-excite on the
    hidden features, 1x1 linear projection conv-BN, and an identity shortcut when the stride
    is 1 and the input and output widths agree. The hidden width is ``int(round(in_channels
    * expansion))`` with no rounding to a multiple of 8, as in SeaFormer's
    ``InvertedResidual``; MobileNetV3 lists its expanded widths, given here as
    ``expanded_filters``. The SE width is ``make_divisible(hidden * se_ratio, 8)``
    (MobileNetV3 with ``se_ratio=0.25``).

    Args:
        filters: output channels.
        kernel_size: depthwise kernel size (odd: 3, 5, 7).
        strides: depthwise stride, 1 or 2.
        expansion: hidden width over input width (ignored when ``expanded_filters`` is set).
        se_ratio: squeeze-excite width over hidden width; 0 leaves SE out.
        activation: activation after the expansion and depthwise convs.
        expanded_filters: an explicit hidden width overriding ``expansion``.

    Example:
        >>> import numpy as np
        >>> block = MBConv(24, kernel_size=5, strides=2, expansion=4.0, se_ratio=0.25, activation="hard_swish")
        >>> tuple(block(np.zeros((1, 16, 16, 16), "float32")).shape), block.hidden_filters, block.use_residual
        ((1, 8, 8, 24), 64, False)
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, expansion: float = 4.0,
                 se_ratio: float = 0.0, activation: str = "relu", expanded_filters: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "filters", filters)
        check_odd_kernel(owner, kernel_size)
        check_strides(owner, strides)
        if not expansion > 0:
            raise ValueError(f"{owner}: expansion must be positive, got {expansion!r}")
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"{owner}: se_ratio must be in [0, 1], got {se_ratio!r}")
        if expanded_filters is not None:
            check_positive_int(owner, "expanded_filters", expanded_filters)
        get_activation(activation)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.expansion = expansion
        self.se_ratio = se_ratio
        self.activation = activation
        self.expanded_filters = expanded_filters
        self.hidden_filters = None
        self.use_residual = None
        self.expand = None
        self.depthwise = None
        self.se = None
        self.project = ConvBNAct(filters, 1, activation="none", name="project", dtype=self.dtype_policy)

    def build(self, input_shape):
        channels = input_shape[-1]
        hidden = self.expanded_filters or int(round(channels * self.expansion))
        self.hidden_filters = hidden
        self.use_residual = self.strides == 1 and channels == self.filters
        shape = input_shape
        if hidden != channels:
            self.expand = ConvBNAct(hidden, 1, activation=self.activation, name="expand", dtype=self.dtype_policy)
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
        self.depthwise = ConvBNAct(hidden, self.kernel_size, strides=self.strides, depthwise=True,
                                   activation=self.activation, name="depthwise", dtype=self.dtype_policy)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        if self.se_ratio > 0:
            self.se = SqueezeExcite(make_divisible(hidden * self.se_ratio, 8), name="se", dtype=self.dtype_policy)
            self.se.build(shape)
        self.project.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(x, training=training)
        x = self.depthwise(x, training=training)
        if self.se is not None:
            x = self.se(x)
        x = self.project(x, training=training)
        return inputs + x if self.use_residual else x

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      expansion=self.expansion, se_ratio=self.se_ratio, activation=self.activation,
                      expanded_filters=self.expanded_filters)
        return config


def drop_path_layer(rate: float, name: str, dtype=None) -> keras.layers.Dropout:
    """Stochastic depth on a residual branch: drops whole samples in training, identity at inference.

    A Dropout whose noise is shared over H, W and C drops the branch of a sample and
    scales the kept ones by ``1 / (1 - rate)``, as timm's ``DropPath``; at rate 0 it is
    the identity. ``dtype``: the owning layer's dtype policy.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_path must be in [0, 1), got {rate!r}")
    return keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=name, dtype=dtype)
