"""Elastic forward passes: run a supernet's cells and head, each built at its widest, as any narrower variant.

Every supernet layer is an ordinary mobileseg block (``cell_layer`` of the slot's widest
variant) whose *weights* are used by a forward pass that takes the active widths as
tensors: a cell's is its op's registered ``forward`` (`mobileseg.arch.ops`), the head's
is here. They follow one rule, every channel beyond an active width is zero, everywhere,
with the masked primitives of `mobileseg.blocks.elastic` (width and kernel masks, batch
and layer norm over active channels, attention-head layouts). Hidden widths derived from
the input width (MBConv expansion, FFN ratios, SE width) come in as tensors computed by
each op's ``hidden_width`` and ``se_width`` (`mobileseg.supernet.plan.SupernetPlan.encode`); a
residual that a narrow variant has and the widest has not (MBConv with equal input and output
widths, the op's ``residual``) is a 0/1 tensor.

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

from keras import ops

from mobileseg.arch.ops.registry import op_spec
from mobileseg.blocks.elastic import conv2d, conv_bn_act, fit_channels, width_mask
from mobileseg.blocks.fusion import resize_to


class CellArgs(NamedTuple):
    """The active sizes of one cell (int32 scalar tensors, read from the arch vector)."""

    in_width: object
    out_width: object
    kernel: object
    hidden: object
    se: object
    residual: object
    context_width: object


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
    return op_spec(op).forward(layer, x, context, args, training, momentum, kernel)


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
