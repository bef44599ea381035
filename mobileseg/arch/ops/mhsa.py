"""HyCTAS' ``mhsa`` op, memory-efficient self-attention (`mobileseg.blocks.mhsa`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from keras import ops

from mobileseg.arch.genotype import Cell, positive
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure
from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.elastic import batch_norm, conv2d, conv_bn_act, gather_channels, head_layout, width_mask
from mobileseg.blocks.mhsa import MemoryEfficientMHSA


@dataclass(frozen=True)
class MHSA(Cell):
    """HyCTAS' memory-efficient self-attention cell (narrow queries/keys, residual)."""

    OP: ClassVar[str] = "mhsa"
    heads: int = field(metadata=positive())
    key_dim: int = field(metadata=positive())


def _layer(cell: MHSA, in_channels: int, name: str):
    return MemoryEfficientMHSA(in_channels, cell.heads, key_dim=cell.key_dim, name=name)


def _forward(layer, x, context, args, training, momentum, kernel):
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
    v = split(gather_channels(conv2d(layer.value, h) * dim, to_wide, wide_valid), layer.head_value_dim)
    attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))))
    out = ops.reshape(ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3)), (-1, height, width, size))
    out = layer.gamma * gather_channels(out, to_narrow, narrow_valid) + h
    out = ops.relu(batch_norm(layer.attention_norm, out, dim, training, momentum)) * dim
    out = conv_bn_act(layer.net3, out, dim, training, momentum)
    return ops.relu(out + x)


OPS = (OpSpec(MHSA, layer=_layer, latency_block=True, forward=_forward, elastic_fields=(), hidden_width=no_hidden,
              se_width=no_hidden, residual=no_residual, structure=no_structure, split_heads=True,
              strided_kernel=True,
              check=no_checks, family="attention"),)
