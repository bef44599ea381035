"""SegFormer's ``efficient_attention`` op with Segformer++ token merging (`mobileseg.blocks.efficient_attention`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import keras
from keras import ops

from mobileseg.arch.genotype import Cell, choices, positive
from mobileseg.arch.ops.spec import OpSpec, no_hidden, no_residual, no_structure
from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.efficient_attention import SegFormerBlock
from mobileseg.blocks.elastic import conv2d, depthwise_conv2d, gather_channels, head_layout, layer_norm, width_mask
from mobileseg.blocks.token_merging import TOME_MODES


@dataclass(frozen=True)
class EfficientAttention(Cell):
    """SegFormer block (spatial-reduction attention + Mix-FFN) with Segformer++ token merging."""

    OP: ClassVar[str] = "efficient_attention"
    heads: int = field(metadata=positive())
    sr_ratio: int = field(default=1, metadata=choices(1, 2, 4, 8))
    mlp_ratio: float = field(default=4.0, metadata=positive())
    tome_mode: str = field(default="none", metadata=choices(*TOME_MODES))
    tome_ratio: float = 0.0


def _layer(cell: EfficientAttention, in_channels: int, name: str):
    return SegFormerBlock(in_channels, cell.heads, sr_ratio=cell.sr_ratio, mlp_ratio=cell.mlp_ratio,
                          tome_mode=cell.tome_mode, tome_ratio=cell.tome_ratio, name=name)


def _forward(layer, x, context, args, training, momentum, kernel):
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
    kv = attn.merge_keys_values(kv, kv_height, kv_width)
    queries, state = attn.merge_queries(h)

    to_wide, wide_valid, to_narrow, narrow_valid = head_layout(args.in_width, attn.num_heads, size, x.dtype)
    kv = attn.kv(kv)
    q = attn._heads(gather_channels(attn.q(queries) * dim, to_wide, wide_valid))
    k = attn._heads(gather_channels(kv[..., :size] * dim, to_wide, wide_valid))
    v = attn._heads(gather_channels(kv[..., size:] * dim, to_wide, wide_valid))
    head_dim = ops.cast(ops.maximum(ops.cast(args.in_width, "int32") // attn.num_heads, 1), q.dtype)
    attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.rsqrt(head_dim))
    out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
    out = gather_channels(ops.reshape(out, (-1, queries.shape[1], size)), to_narrow, narrow_valid)
    out = attn.proj(out) * dim
    out = attn.unmerge_queries(out, state, height, width)
    x = x + out
    h = layer_norm(layer.norm2, x, dim, args.in_width)
    hidden = width_mask(args.hidden, mlp.hidden_dim, x.dtype)
    h = mlp.fc1(h) * hidden
    h = depthwise_conv2d(mlp.dwconv, h) * hidden
    return x + mlp.fc2(keras.activations.gelu(h, approximate=False)) * dim


def _hidden(cell: EfficientAttention, in_width: int) -> int:
    return int(in_width * cell.mlp_ratio)


def _check(cell: EfficientAttention, in_width: int) -> tuple:
    if not 0.0 <= cell.tome_ratio < 1.0:
        return (("tome_ratio", f"must be in [0, 1), got {cell.tome_ratio}"),)
    if (cell.tome_mode == "none") != (cell.tome_ratio == 0.0):
        return (("tome_ratio", "token merging needs both a tome_mode other than none and a tome_ratio above 0"),)
    return ()


OPS = (OpSpec(EfficientAttention, layer=_layer, latency_block=True, forward=_forward, elastic_fields=("mlp_ratio",),
              hidden_width=_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
              split_heads=True, strided_kernel=True,
              check=_check, family="attention"),)
