"""RTFormer's ops: ``gfa_attention`` and ``cross_attention`` (`mobileseg.blocks.rtformer_blocks`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import keras
from keras import ops

from mobileseg.arch.genotype import Cell, Ref, positive
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure
from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.elastic import batch_norm, conv2d, width_mask
from mobileseg.blocks.gfa_attention import adaptive_max_pool, grouped_double_normalization
from mobileseg.blocks.rtformer_blocks import CrossResolutionBlock, GFABlock


@dataclass(frozen=True)
class GFAttention(Cell):
    """RTFormer's GPU-friendly (external) attention + FFN, for a low-resolution branch."""

    OP: ClassVar[str] = "gfa_attention"
    heads: int = field(metadata=positive())
    units: int = field(metadata=positive())


@dataclass(frozen=True)
class CrossAttention(Cell):
    """RTFormer's cross-resolution attention + FFN: queries here, keys/values pooled from ``context``."""

    OP: ClassVar[str] = "cross_attention"
    context: Ref = field()
    context_size: int = field(default=12, metadata=positive())


def _gfa_layer(cell: GFAttention, in_channels: int, name: str):
    return GFABlock(in_channels, cell.heads, memory_units=cell.units, name=name)


def _cross_layer(cell: CrossAttention, in_channels: int, name: str):
    return CrossResolutionBlock(in_channels, context_size=cell.context_size, name=name)


def _rtformer_ffn(ffn, x, mask, training, momentum):
    h = batch_norm(ffn.norm, x, mask, training, momentum) * mask
    h = conv2d(ffn.conv1, h) * mask  # hidden width = dim (the official MLP)
    return conv2d(ffn.conv2, keras.activations.gelu(h, approximate=False)) * mask


def _gfa_forward(layer, x, context, args, training, momentum, kernel):
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


def _cross_forward(layer, x, context, args, training, momentum, kernel):
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


def _gfa_check(cell: GFAttention, in_width: int) -> tuple:
    if cell.units % cell.heads:
        return (("units", f"{cell.heads} heads do not divide {cell.units} memory units"),)
    return ()


def _hidden(cell, in_width: int) -> int:
    return in_width  # the official MLP: hidden width = dim


OPS = (
    OpSpec(GFAttention, layer=_gfa_layer, latency_block=True, forward=_gfa_forward, elastic_fields=(),
           hidden_width=_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
           split_heads=True, strided_kernel=True, check=_gfa_check, family="attention"),
    OpSpec(CrossAttention, layer=_cross_layer, latency_block=True, forward=_cross_forward, elastic_fields=(),
           hidden_width=_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
           split_heads=False, strided_kernel=True, check=no_checks, family="attention"),
)
