"""Elastic forward passes: run a block built at its widest as any narrower variant of it.

Every supernet layer is an ordinary mobileseg block (``cell_layer`` of the slot's widest
variant) whose *weights* are used here by a forward pass that takes the active widths as
tensors. The rule that makes a narrow variant exact: every channel beyond an active
width is zero, everywhere. Concretely:

- a tensor between cells has zeros past its active width, so the next layer's input
  channels past it meet zeros, which equals slicing the first input channels of its
  kernels (weight sharing by first channels, "sliced or masked": masked here);
- every output and every hidden activation is multiplied by its width mask *after* its
  batch norm and activation (BN of an all-zero channel is ``beta``, not 0);
- batch norm (`batch_norm`) takes statistics over the batch as Keras does, but updates
  the moving averages of active channels only, so a narrow subnet never overwrites the
  statistics of channels it does not run; ``momentum`` can be overridden (BN
  recalibration uses a cumulative average);
- layer norm (`layer_norm`) averages over the active channels only;
- attention heads: a narrow width ``w`` splits its channels into heads of ``w / heads``
  where the widest splits into ``W / heads``; `head_layout` gathers the narrow layout
  into the wide one (zeros in the gaps) and back, so every head sees exactly its own
  channels (`SegFormer` queries/keys/values, HyCTAS values);
- kernels: a smaller kernel is the centre of the widest one (`kernel_mask`), exact with
  "same" padding whenever the kernel is not smaller than the stride (the plan splits the
  other cases into separate layers);
- hidden widths derived from the input width (MBConv expansion, FFN ratios, SE width)
  come in as tensors computed by `mobileseg.supernet.plan.hidden_width`;
- a residual that a narrow variant has and the widest has not (MBConv with equal input
  and output widths) is a 0/1 tensor.

Under a mixed precision policy (issue 20) the supernet computes in its compute dtype: Keras
casts its float32 weights when they are read inside ``Supernet.call``, the masks are made in the
dtype of the tensor they multiply, and what is numerically sensitive runs in float32 and says so:
batch-norm and layer-norm statistics and their moving averages (float32 variables), every
softmax (`softmax_float32`), RTFormer's double normalization and token matching (their blocks').

With the same weights, a variant computed here equals `build_model` of that variant with
the first channels copied in (`mobileseg.supernet.extract`), in inference and training
mode alike. The supernet tests check it op by op.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import ops

from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.conv import zoomed_size
from mobileseg.blocks.fusion import resize_to
from mobileseg.blocks.gfa_attention import adaptive_max_pool, grouped_double_normalization
from mobileseg.blocks.token_merging import (
    bipartite_soft_matching,
    merge_tokens,
    neighbour_merge,
    neighbour_unmerge,
    unmerge_tokens,
)


class CellArgs(NamedTuple):
    """The active sizes of one cell (int32 scalar tensors, read from the arch vector)."""

    in_width: object
    out_width: object
    kernel: object
    hidden: object
    se: object
    residual: object
    context_width: object


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


def _gather_channels(x, index, valid):
    return ops.take(x, index, axis=-1) * valid


# -- cells -----------------------------------------------------------------------------------------
def run_cell(op: str, layer, x, context, args: CellArgs, training, momentum=None, kernel_elastic=False):
    """The output of ``layer`` (a widest block of op ``op``) run as the variant ``args`` describe.

    Args:
        op: the genotype op.
        layer: the block, built at the slot's widest input (``x.shape[-1]``).
        x: the input, zero past ``args.in_width``.
        context: the context input (fuse, cross_attention), zero past ``args.context_width``.
        args: active sizes.
        training: batch statistics and dropout.
        momentum: BN momentum override (None: the layers').
        kernel_elastic: the kernel size varies in this group (centre-mask it).

    Returns:
        The output at the layer's widest channel count, zero past the active output width.
    """
    kernel = args.kernel if kernel_elastic else None
    if op == "skip":
        return x
    if op == "conv":
        return conv_bn_act(layer, x, width_mask(args.out_width, layer.filters, x.dtype), training, momentum, kernel)
    if op == "mbconv":
        return _mbconv(layer, x, args, training, momentum, kernel)
    if op == "zoomed_conv":
        return _zoomed_conv(layer, x, args, training, momentum, kernel)
    if op == "patch_embed":
        mask = width_mask(args.out_width, layer.filters, x.dtype)
        return layer_norm(layer.norm, conv2d(layer.proj, x, kernel), mask, args.out_width)
    if op == "sea_attention":
        return _sea_attention(layer, x, args, training, momentum)
    if op == "gfa_attention":
        return _gfa_attention(layer, x, args, training, momentum)
    if op == "cross_attention":
        return _cross_attention(layer, x, context, args, training, momentum)
    if op == "efficient_attention":
        return _efficient_attention(layer, x, args, training)
    if op == "mhsa":
        return _mhsa(layer, x, args, training, momentum)
    if op == "fuse":
        return _fuse(layer, x, context, args, training, momentum)
    raise ValueError(f"no elastic forward for op {op!r}")


def _mbconv(layer, x, args, training, momentum, kernel):
    hidden = width_mask(args.hidden, layer.hidden_filters, x.dtype)
    h = x
    if layer.expand is not None:
        h = conv_bn_act(layer.expand, h, hidden, training, momentum)
    h = conv_bn_act(layer.depthwise, h, hidden, training, momentum, kernel)
    if layer.se is not None:
        se = layer.se
        scale = ops.mean(h, axis=(1, 2), keepdims=True)
        scale = se._activation(se.reduce(scale)) * width_mask(args.se, se.reduced_filters, x.dtype)
        h = h * se._gate(se.expand(scale))
    out = conv_bn_act(layer.project, h, width_mask(args.out_width, layer.filters, x.dtype), training, momentum)
    if layer.strides == 1:
        out = out + fit_channels(x, layer.filters) * ops.cast(args.residual, x.dtype)
    return out


def _zoomed_conv(layer, x, args, training, momentum, kernel):
    height, width = x.shape[1], x.shape[2]
    mask = width_mask(args.out_width, layer.filters, x.dtype)
    y = ops.image.resize(x, zoomed_size(height, width), interpolation="bilinear")
    y = conv_bn_act(layer.conv, y, mask, training, momentum, kernel)
    if layer.strides == 1:
        y = ops.image.resize(y, (height, width), interpolation="bilinear")
    return layer._activation(y) * mask


def _sea_attention(layer, x, args, training, momentum):
    attn, mlp = layer.attn, layer.mlp
    height, width = x.shape[1], x.shape[2]
    dim = width_mask(args.in_width, layer.dim, x.dtype)
    q = conv_bn_act(attn.to_q, x, None, training, momentum)
    k = conv_bn_act(attn.to_k, x, None, training, momentum)
    v = conv_bn_act(attn.to_v, x, None, training, momentum)
    detail = conv_bn_act(attn.dwconv, ops.concatenate([q, k, v], axis=-1), None, training, momentum)
    detail = conv_bn_act(attn.pwconv, detail, dim, training, momentum)
    row = attn._axial_attention(ops.mean(q, axis=2), ops.mean(k, axis=2), ops.mean(v, axis=2), height,
                                attn.pos_emb_rowq, attn.pos_emb_rowk, attn._row_resize)
    row = ops.reshape(row, (-1, height, 1, attn.v_channels))
    row = conv_bn_act(attn.proj_encode_row, attn._activation(row), None, training, momentum)
    column = attn._axial_attention(ops.mean(q, axis=1), ops.mean(k, axis=1), ops.mean(v, axis=1), width,
                                   attn.pos_emb_columnq, attn.pos_emb_columnk, attn._column_resize)
    column = ops.reshape(column, (-1, 1, width, attn.v_channels))
    column = conv_bn_act(attn.proj_encode_column, attn._activation(column), None, training, momentum)
    out = conv_bn_act(attn.proj, attn._activation(v + (row + column)), dim, training, momentum)
    x = x + keras.activations.hard_sigmoid(out) * detail
    hidden = width_mask(args.hidden, mlp.hidden_dim, x.dtype)
    h = conv_bn_act(mlp.fc1, x, hidden, training, momentum)
    h = mlp._activation(depthwise_conv2d(mlp.dwconv, h)) * hidden
    return x + conv_bn_act(mlp.fc2, h, dim, training, momentum)


def _rtformer_ffn(ffn, x, mask, training, momentum):
    h = batch_norm(ffn.norm, x, mask, training, momentum) * mask
    h = conv2d(ffn.conv1, h) * mask  # hidden width = dim (the official MLP)
    return conv2d(ffn.conv2, keras.activations.gelu(h, approximate=False)) * mask


def _gfa_attention(layer, x, args, training, momentum):
    if layer.shortcut_conv is not None:
        raise ValueError("a supernet GFABlock keeps its width (no shortcut conv)")
    attn = layer.attn
    dim = width_mask(args.in_width, layer.dim, x.dtype)
    h = conv2d(attn.key_memory, batch_norm(attn.norm, x, dim, training, momentum) * dim)
    height, width = h.shape[1], h.shape[2]
    weights = grouped_double_normalization(ops.reshape(h, (-1, height * width, attn.units)), attn.num_heads)
    h = conv2d(attn.value_memory, ops.reshape(weights, (-1, height, width, attn.units))) * dim
    x = x + h
    return x + _rtformer_ffn(layer.mlp, x, dim, training, momentum)


def _cross_attention(layer, x, context, args, training, momentum):
    attn = layer.cross_attn
    height, width = x.shape[1], x.shape[2]
    dim_size = layer.dim
    dim = width_mask(args.in_width, dim_size, x.dtype)
    context_mask = width_mask(args.context_width, context.shape[-1], x.dtype)
    keys_count = attn.context_size ** 2
    kv = batch_norm(attn.context_norm, context, context_mask, training, momentum) * context_mask
    kv = conv2d(attn.context_kv, adaptive_max_pool(kv, attn.context_size))
    kv = ops.reshape(kv, (-1, keys_count, 2 * dim_size))
    keys, values = kv[..., :dim_size] * dim, kv[..., dim_size:] * dim
    queries = batch_norm(attn.norm, x, dim, training, momentum) * dim
    queries = ops.reshape(queries, (-1, height * width, dim_size))
    logits = ops.matmul(queries, ops.transpose(keys, (0, 2, 1))) * (keys_count ** -0.5)
    out = ops.reshape(ops.matmul(softmax_float32(logits), values), (-1, height, width, dim_size))
    x = x + out
    return x + _rtformer_ffn(layer.mlp, x, dim, training, momentum)


def _efficient_attention(layer, x, args, training):
    attn, mlp = layer.attn, layer.mlp
    height, width = x.shape[1], x.shape[2]
    size = layer.dim
    dim = width_mask(args.in_width, size, x.dtype)
    h = layer_norm(layer.norm1, x, dim, args.in_width)
    tokens = ops.reshape(h, (-1, height * width, size))
    if attn.sr is not None:
        kv_map = conv2d(attn.sr, h) * dim
        kv_height, kv_width = kv_map.shape[1], kv_map.shape[2]
        kv = layer_norm(attn.norm, ops.reshape(kv_map, (-1, kv_height * kv_width, size)), dim, args.in_width)
    else:
        kv, kv_height, kv_width = tokens, height, width
    if attn._merge == "kv_pool":
        kv_map = neighbour_merge(ops.reshape(kv, (-1, kv_height, kv_width, size)), attn._pool)
        kv = ops.reshape(kv_map, (-1, kv_map.shape[1] * kv_map.shape[2], size))
    elif attn._merge == "kv_bsm":
        kv = merge_tokens(kv, attn._plan, bipartite_soft_matching(kv, attn._plan))
    queries, matching, query_map = tokens, None, None
    if attn._merge == "q_pool":
        query_map = neighbour_merge(h, attn._pool)
        queries = ops.reshape(query_map, (-1, query_map.shape[1] * query_map.shape[2], size))
    elif attn._merge == "q_bsm":
        matching = bipartite_soft_matching(tokens, attn._plan)
        queries = merge_tokens(tokens, attn._plan, matching)

    to_wide, wide_valid, to_narrow, narrow_valid = head_layout(args.in_width, attn.num_heads, size, x.dtype)
    kv = attn.kv(kv)
    q = attn._heads(_gather_channels(attn.q(queries) * dim, to_wide, wide_valid))
    k = attn._heads(_gather_channels(kv[..., :size] * dim, to_wide, wide_valid))
    v = attn._heads(_gather_channels(kv[..., size:] * dim, to_wide, wide_valid))
    head_dim = ops.cast(ops.maximum(ops.cast(args.in_width, "int32") // attn.num_heads, 1), q.dtype)
    attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.rsqrt(head_dim))
    out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
    out = _gather_channels(ops.reshape(out, (-1, queries.shape[1], size)), to_narrow, narrow_valid)
    out = attn.proj(out) * dim
    if attn._merge == "q_pool":
        out = neighbour_unmerge(ops.reshape(out, (-1, query_map.shape[1], query_map.shape[2], size)), height, width)
    else:
        if attn._merge == "q_bsm":
            out = unmerge_tokens(out, attn._plan, matching)
        out = ops.reshape(out, (-1, height, width, size))
    x = x + out
    h = layer_norm(layer.norm2, x, dim, args.in_width)
    hidden = width_mask(args.hidden, mlp.hidden_dim, x.dtype)
    h = mlp.fc1(h) * hidden
    h = depthwise_conv2d(mlp.dwconv, h) * hidden
    return x + mlp.fc2(keras.activations.gelu(h, approximate=False)) * dim


def _mhsa(layer, x, args, training, momentum):
    if layer.shortcut is not None or layer.strides != 1 or layer.attention_stride != 1:
        raise ValueError("a supernet MHSA cell keeps its width and resolution")
    height, width = x.shape[1], x.shape[2]
    size = layer.dim
    dim = width_mask(args.in_width, size, x.dtype)
    h = conv_bn_act(layer.net1, x, dim, training, momentum)
    tokens = height * width
    heads = layer.num_heads

    def split(t, depth):
        return ops.transpose(ops.reshape(t, (-1, tokens, heads, depth)), (0, 2, 1, 3))

    to_wide, wide_valid, to_narrow, narrow_valid = head_layout(args.in_width, heads, size, x.dtype)
    q = split(conv2d(layer.query, h), layer.head_key_dim)
    k = split(conv2d(layer.key, h), layer.head_key_dim)
    v = split(_gather_channels(conv2d(layer.value, h) * dim, to_wide, wide_valid), layer.head_value_dim)
    attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))))
    out = ops.reshape(ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3)), (-1, height, width, size))
    out = layer.gamma * _gather_channels(out, to_narrow, narrow_valid) + h
    out = ops.relu(batch_norm(layer.attention_norm, out, dim, training, momentum)) * dim
    out = conv_bn_act(layer.net3, out, dim, training, momentum)
    return ops.relu(out + x)


def _fuse(layer, x, context, args, training, momentum):
    mask = width_mask(args.out_width, layer.filters, x.dtype)
    size = ops.shape(x)[1:3]
    if hasattr(layer, "project_x"):  # SumFusion
        local = conv_bn_act(layer.project_x, x, mask, training, momentum)
        return local + resize_to(conv_bn_act(layer.project_context, context, mask, training, momentum), size)
    local = conv_bn_act(layer.local_embedding, x, mask, training, momentum)
    gate = layer._gate(conv_bn_act(layer.global_act, context, mask, training, momentum))
    return local * resize_to(gate, size)


# -- heads -----------------------------------------------------------------------------------------
def run_head(op: str, layer, features: list, present: list, single, width, training, momentum=None):
    """The logits of a widest head run with ``width`` channels on the ``present`` inputs.

    Args:
        op: "light", "mlp" or "lraspp".
        layer: the head built for every input of the space at the widest width.
        features: one tensor per head input of the space (zeros for absent ones).
        present: one 0/1 int32 tensor per input, or None when it is always present.
        single: int32 0/1 tensor: the light head runs its first input alone (no projection),
            or None when that cannot happen.
        width: the active head width.
    """
    if op == "light":
        return _light_head(layer, features, present, single, width, training, momentum)
    if op == "mlp":
        return _mlp_head(layer, features, present, width, training, momentum)
    return _lraspp_head(layer, features, width, training, momentum)


def _when_present(flag, compute, like_shape, dtype):
    """``compute()`` when ``flag`` (int32 0/1) is 1, else zeros of ``dtype``; None means always present."""
    if flag is None:
        return compute()

    def absent():
        return ops.zeros(like_shape, dtype)

    return ops.cond(ops.cast(flag, "bool"), compute, absent)


def _light_head(layer, features, present, single, width, training, momentum):
    mask = width_mask(width, layer.width, features[0].dtype)
    first = features[0]
    size = tuple(first.shape[1:3])
    batch = ops.shape(first)[0]

    if not layer.projections:
        x = fit_channels(first, layer.width)
    else:
        def projected():
            total = conv_bn_act(layer.projections[0], first, mask, training, momentum)
            for projection, feature, flag in zip(layer.projections[1:], features[1:], present[1:], strict=True):
                total = total + _when_present(
                    flag, lambda p=projection, f=feature: resize_to(conv_bn_act(p, f, mask, training, momentum),
                                                                    size),
                    (batch, *size, layer.width), first.dtype)
            return total

        if single is None:
            x = projected()
        else:
            x = ops.cond(ops.cast(single, "bool"), lambda: fit_channels(first, layer.width), projected)
    x = conv_bn_act(layer.linear_fuse, x, mask, training, momentum)
    if layer.dropout_layer is not None:
        x = layer.dropout_layer(x, training=training)
    return layer.classifier(x)


def _mlp_head(layer, features, present, width, training, momentum):
    mask = width_mask(width, layer.width, features[0].dtype)
    size = tuple(features[0].shape[1:3])
    batch = ops.shape(features[0])[0]
    embedded = [
        _when_present(flag, lambda lin=linear, f=feature: resize_to(lin(f) * mask, size), (batch, *size, layer.width),
                      mask.dtype)
        for linear, feature, flag in zip(layer.linears, features, present, strict=True)]
    x = ops.concatenate(embedded[::-1], axis=-1) if len(embedded) > 1 else embedded[0]
    x = conv_bn_act(layer.linear_fuse, x, mask, training, momentum)
    if layer.dropout_layer is not None:
        x = layer.dropout_layer(x, training=training)
    return layer.classifier(x)


def _lraspp_head(layer, features, width, training, momentum):
    low, high = features
    mask = width_mask(width, layer.width, high.dtype)
    x = conv_bn_act(layer.cbr, high, mask, training, momentum)
    pooled = ops.mean(high, axis=(1, 2), keepdims=True)
    x = x * ops.sigmoid(conv2d(layer.scale, pooled))
    x = resize_to(x, tuple(low.shape[1:3]))
    return conv2d(layer.low_classifier, low) + conv2d(layer.high_classifier, x)
