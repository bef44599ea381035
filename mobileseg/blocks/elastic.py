"""Masked computations of the blocks' layers: one block built at its widest runs as a narrower variant.

The supernet (`mobileseg.supernet.elastic`) and each op's elastic forward
(`mobileseg.arch.ops`) use a block's *weights* with the active widths given as tensors.
The rule that makes a narrow variant exact: every channel beyond an active width is zero,
everywhere. Concretely:

- a tensor between cells has zeros past its active width, so the next layer's input
  channels past it meet zeros, which equals slicing the first input channels of its
  kernels (weight sharing by first channels, "sliced or masked": masked here);
- every output and every hidden activation is multiplied by its width mask (`width_mask`)
  *after* its batch norm and activation (BN of an all-zero channel is ``beta``, not 0);
- batch norm (`batch_norm`) takes statistics over the batch as Keras does, but updates
  the moving averages of active channels only, so a narrow subnet never overwrites the
  statistics of channels it does not run; ``momentum`` can be overridden (BN
  recalibration uses a cumulative average);
- layer norm (`layer_norm`) averages over the active channels only;
- attention heads: a narrow width ``w`` splits its channels into heads of ``w / heads``
  where the widest splits into ``W / heads``; `head_layout` gathers the narrow layout
  into the wide one (zeros in the gaps) and back, so every head sees exactly its own
  channels;
- kernels: a smaller kernel is the centre of the widest one (`kernel_mask`), exact with
  "same" padding whenever the kernel is not smaller than the stride.

Under a mixed precision policy the masks are made in the dtype of the tensor they multiply,
and batch-norm and layer-norm statistics run in float32.
"""

from __future__ import annotations

import keras
from keras import ops


def width_mask(active, size: int, dtype="float32"):
    """``(size,)`` of ``dtype``: 1 for the first ``active`` channels, 0 after.

    Example:
        >>> ops.convert_to_numpy(width_mask(2, 4)).tolist()
        [1.0, 1.0, 0.0, 0.0]
    """
    return ops.cast(ops.arange(size) < ops.cast(active, "int32"), dtype)


def kernel_mask(active, size: int, dtype="float32"):
    """``(size, size)`` of ``dtype``: 1 on the centred ``active x active`` square.

    Example:
        >>> ops.convert_to_numpy(kernel_mask(3, 5))[0].tolist(), ops.convert_to_numpy(kernel_mask(3, 5))[1].tolist()
        ([0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0])
    """
    offset = ops.abs(ops.arange(size) - size // 2)
    line = ops.cast(offset <= ops.cast(active, "int32") // 2, dtype)
    return line[:, None] * line[None, :]


def fit_channels(x, channels: int):
    """``x`` with exactly ``channels`` channels: cut, or zero-padded on the right."""
    have = x.shape[-1]
    if have == channels:
        return x
    if have > channels:
        return x[..., :channels]
    pad = [(0, 0)] * (len(x.shape) - 1) + [(0, channels - have)]
    return ops.pad(x, pad)


def _masked(x, mask):
    return x if mask is None else x * mask


def _float32(value):
    return None if value is None else ops.cast(value, "float32")


def batch_norm(bn: keras.layers.BatchNormalization, x, mask, training: bool, momentum=None):
    """Keras' batch norm over the last axis, updating moving statistics of active channels only.

    Computed in float32 under any policy (the statistics are float32 variables), returned in
    ``x``'s dtype.

    Args:
        bn: the (widest) layer whose variables are used.
        x: any rank, channels last.
        mask: ``(C,)`` active channels, or None for all.
        training: batch statistics (and moving-average updates) or moving statistics.
        momentum: None for the layer's, else a float32 scalar tensor (0 takes the batch's).
    """
    dtype, x = x.dtype, ops.cast(x, "float32")
    if training and bn.trainable:
        axes = list(range(len(x.shape) - 1))
        mean, variance = ops.moments(x, axes=axes)
        rate = bn.momentum if momentum is None else momentum
        new_mean = bn.moving_mean * rate + mean * (1.0 - rate)
        new_variance = bn.moving_variance * rate + variance * (1.0 - rate)
        if mask is not None:
            new_mean = ops.where(mask > 0, new_mean, bn.moving_mean)
            new_variance = ops.where(mask > 0, new_variance, bn.moving_variance)
        bn.moving_mean.assign(new_mean)
        bn.moving_variance.assign(new_variance)
    else:
        mean, variance = bn.moving_mean, bn.moving_variance
    y = ops.batch_normalization(x, mean, variance, axis=-1, offset=_float32(bn.beta), scale=_float32(bn.gamma),
                                epsilon=bn.epsilon)
    return ops.cast(y, dtype)


def layer_norm(ln: keras.layers.LayerNormalization, x, mask, count):
    """Layer norm over the first ``count`` channels (the rest come out 0), computed in float32."""
    if mask is None:
        return ln(x)
    dtype, x, mask = x.dtype, ops.cast(x, "float32"), ops.cast(mask, "float32")
    count = ops.cast(count, "float32")
    mean = ops.sum(x * mask, axis=-1, keepdims=True) / count
    centered = (x - mean) * mask
    variance = ops.sum(centered * centered, axis=-1, keepdims=True) / count
    y = (centered * ops.rsqrt(variance + ln.epsilon) * _float32(ln.gamma) + _float32(ln.beta)) * mask
    return ops.cast(y, dtype)


def conv2d(layer: keras.layers.Conv2D, x, kernel=None):
    """A Conv2D's computation; ``kernel`` (the active size) centre-masks its kernel."""
    weights = layer.kernel
    if kernel is not None:
        weights = weights * kernel_mask(kernel, layer.kernel_size[0], weights.dtype)[:, :, None, None]
    y = ops.conv(x, weights, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate)
    return y + layer.bias if layer.use_bias else y


def depthwise_conv2d(layer: keras.layers.DepthwiseConv2D, x, kernel=None):
    """A DepthwiseConv2D's computation; ``kernel`` (the active size) centre-masks its kernel."""
    weights = layer.kernel
    if kernel is not None:
        weights = weights * kernel_mask(kernel, layer.kernel_size[0], weights.dtype)[:, :, None, None]
    y = ops.depthwise_conv(x, weights, strides=layer.strides, padding=layer.padding,
                           dilation_rate=layer.dilation_rate)
    return y + layer.bias if layer.use_bias else y


def conv_bn_act(block, x, mask, training, momentum=None, kernel=None):
    """A `ConvBNAct` with its output channels masked after BN and activation."""
    if block.depthwise:
        y = depthwise_conv2d(block.conv, x, kernel)
    else:
        y = conv2d(block.conv, x, kernel)
    if block.bn is not None:
        y = batch_norm(block.bn, y, mask, training, momentum)
    return _masked(block._activation(y), mask)


def head_layout(active, heads: int, wide: int, dtype="float32"):
    """Index maps between a narrow head layout (``active / heads`` per head) and the wide one.

    Returns:
        (to_wide, to_wide_valid, to_narrow, to_narrow_valid): gather indices over the
        channel axis and 0/1 masks of ``dtype``; ``gather(x, to_wide) * to_wide_valid`` puts narrow
        channel ``j * d + o`` at wide position ``j * D + o``.

    Example:
        >>> maps = head_layout(4, 2, 6)
        >>> [ops.convert_to_numpy(m).tolist() for m in maps]
        [[0, 1, 0, 2, 3, 0], [1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0, 1, 3, 4, 0, 0], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    wide_head = wide // heads
    narrow_head = ops.maximum(ops.cast(active, "int32") // heads, 1)
    position = ops.arange(wide, dtype="int32")
    head, offset = position // wide_head, position % wide_head
    to_wide_valid = offset < narrow_head
    to_wide = ops.where(to_wide_valid, head * narrow_head + offset, 0)
    to_narrow_valid = position < ops.cast(active, "int32")
    to_narrow = ops.where(to_narrow_valid, (position // narrow_head) * wide_head + position % narrow_head, 0)
    return (to_wide, ops.cast(to_wide_valid, dtype), to_narrow, ops.cast(to_narrow_valid, dtype))


def gather_channels(x, index, valid):
    """``x``'s channels gathered at ``index`` (a `head_layout` map), zero where ``valid`` is 0."""
    return ops.take(x, index, axis=-1) * valid
