"""The convolution ops: ``conv``, ``mbconv``, ``zoomed_conv`` and ``patch_embed`` (`mobileseg.blocks.conv`, `zoomed_conv`, `patch_embed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from keras import ops

from mobileseg.arch.genotype import KERNELS, STRIDES, Cell, choices, positive
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure
from mobileseg.blocks import conv, patch_embed, zoomed_conv
from mobileseg.blocks.activations import ACTIVATIONS
from mobileseg.blocks.elastic import conv2d, conv_bn_act, fit_channels, layer_norm, width_mask


@dataclass(frozen=True)
class Conv(Cell):
    """Convolution + BN + activation (stems, transitions)."""

    OP: ClassVar[str] = "conv"
    width: int = field(metadata=positive())
    kernel: int = field(default=3, metadata=choices(*KERNELS))
    stride: int = field(default=1, metadata=choices(*STRIDES))
    act: str = field(default="relu", metadata=choices(*ACTIVATIONS))


@dataclass(frozen=True)
class MBConv(Cell):
    """MobileNetV2/V3 inverted residual; ``expanded`` overrides ``expansion`` when set."""

    OP: ClassVar[str] = "mbconv"
    width: int = field(metadata=positive())
    kernel: int = field(default=3, metadata=choices(*KERNELS))
    stride: int = field(default=1, metadata=choices(*STRIDES))
    expansion: float = field(default=4.0, metadata=positive())
    se: bool = False
    act: str = field(default="relu", metadata=choices(*ACTIVATIONS))
    expanded: int = 0


@dataclass(frozen=True)
class ZoomedConv(Cell):
    """FasterSeg's zoomed convolution (downsample, conv, upsample)."""

    OP: ClassVar[str] = "zoomed_conv"
    width: int = field(metadata=positive())
    kernel: int = field(default=3, metadata=choices(*KERNELS))
    stride: int = field(default=1, metadata=choices(*STRIDES))
    act: str = field(default="relu", metadata=choices(*ACTIVATIONS))


@dataclass(frozen=True)
class PatchEmbed(Cell):
    """SegFormer's overlapping patch embedding (strided conv + LayerNorm)."""

    OP: ClassVar[str] = "patch_embed"
    width: int = field(metadata=positive())
    kernel: int = field(default=3, metadata=choices(*KERNELS))
    stride: int = field(default=2, metadata=choices(2, 4))


def _conv_layer(cell: Conv, in_channels: int, name: str):
    return conv.ConvBNAct(cell.width, cell.kernel, cell.stride, activation=cell.act, name=name)


def _conv_forward(layer, x, context, args, training, momentum, kernel):
    return conv_bn_act(layer, x, width_mask(args.out_width, layer.filters, x.dtype), training, momentum, kernel)


def _mbconv_layer(cell: MBConv, in_channels: int, name: str):
    return conv.MBConv(cell.width, cell.kernel, cell.stride, expansion=cell.expansion,
                       se_ratio=0.25 if cell.se else 0.0, activation=cell.act,
                       expanded_filters=cell.expanded or None, name=name)


def _mbconv_forward(layer, x, context, args, training, momentum, kernel):
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


def _mbconv_hidden(cell: MBConv, in_width: int) -> int:
    return cell.expanded or int(round(in_width * cell.expansion))


def _mbconv_se(cell: MBConv, in_width: int) -> int:
    return conv.make_divisible(_mbconv_hidden(cell, in_width) * 0.25, 8) if cell.se else 0


def _mbconv_residual(cell: MBConv, in_width: int) -> bool:
    return cell.stride == 1 and in_width == cell.width


def _mbconv_structure(cell: MBConv, in_width: int) -> tuple:
    return (("has_expand", _mbconv_hidden(cell, in_width) != in_width),)


def _zoomed_conv_layer(cell: ZoomedConv, in_channels: int, name: str):
    return zoomed_conv.ZoomedConv(cell.width, cell.kernel, cell.stride, activation=cell.act, name=name)


def _zoomed_conv_forward(layer, x, context, args, training, momentum, kernel):
    height, width = x.shape[1], x.shape[2]
    mask = width_mask(args.out_width, layer.filters, x.dtype)
    y = ops.image.resize(x, zoomed_conv.zoomed_size(height, width), interpolation="bilinear")
    y = conv_bn_act(layer.conv, y, mask, training, momentum, kernel)
    if layer.strides == 1:
        y = ops.image.resize(y, (height, width), interpolation="bilinear")
    return layer._activation(y) * mask


def _patch_embed_layer(cell: PatchEmbed, in_channels: int, name: str):
    return patch_embed.OverlapPatchEmbed(cell.width, cell.kernel, cell.stride, name=name)


def _patch_embed_forward(layer, x, context, args, training, momentum, kernel):
    mask = width_mask(args.out_width, layer.filters, x.dtype)
    return layer_norm(layer.norm, conv2d(layer.proj, x, kernel), mask, args.out_width)


OPS = (
    OpSpec(Conv, layer=_conv_layer, latency_block=True, forward=_conv_forward, elastic_fields=("width", "kernel"),
           hidden_width=no_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
           split_heads=False, strided_kernel=True, check=no_checks, family="conv"),
    OpSpec(MBConv, layer=_mbconv_layer, latency_block=True, forward=_mbconv_forward,
           elastic_fields=("width", "kernel", "expansion", "expanded"), hidden_width=_mbconv_hidden,
           se_width=_mbconv_se, residual=_mbconv_residual, structure=_mbconv_structure,
           split_heads=False, strided_kernel=True, check=no_checks, family="conv"),
    OpSpec(ZoomedConv, layer=_zoomed_conv_layer, latency_block=True, forward=_zoomed_conv_forward,
           elastic_fields=("width", "kernel"), hidden_width=no_hidden, se_width=no_hidden, residual=no_residual,
           structure=no_structure, split_heads=False, strided_kernel=False, check=no_checks, family="conv"),
    OpSpec(PatchEmbed, layer=_patch_embed_layer, latency_block=True, forward=_patch_embed_forward,
           elastic_fields=("width", "kernel"), hidden_width=no_hidden, se_width=no_hidden, residual=no_residual,
           structure=no_structure, split_heads=False, strided_kernel=True, check=no_checks, family="conv"),
)
