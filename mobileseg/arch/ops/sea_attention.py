"""SeaFormer's ``sea_attention`` op (`mobileseg.blocks.sea_attention`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import keras
from keras import ops

from mobileseg.arch.genotype import Cell, choices, positive
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure
from mobileseg.blocks.activations import ACTIVATIONS
from mobileseg.blocks.elastic import conv_bn_act, depthwise_conv2d, width_mask
from mobileseg.blocks.sea_attention import SeaFormerBlock


@dataclass(frozen=True)
class SeaAttention(Cell):
    """SeaFormer block: squeeze-enhanced axial attention + detail enhancement + FFN."""

    OP: ClassVar[str] = "sea_attention"
    heads: int = field(metadata=positive())
    key_dim: int = field(metadata=positive())
    attn_ratio: int = field(default=2, metadata=positive())
    mlp_ratio: float = field(default=2.0, metadata=positive())
    act: str = field(default="relu", metadata=choices(*ACTIVATIONS))


def _layer(cell: SeaAttention, in_channels: int, name: str):
    return SeaFormerBlock(in_channels, cell.key_dim, cell.heads, mlp_ratio=cell.mlp_ratio,
                          attn_ratio=cell.attn_ratio, activation=cell.act, name=name)


def _forward(layer, x, context, args, training, momentum, kernel):
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


def _hidden(cell: SeaAttention, in_width: int) -> int:
    return int(in_width * cell.mlp_ratio)


OPS = (OpSpec(SeaAttention, layer=_layer, latency_block=True, forward=_forward, elastic_fields=("mlp_ratio",),
              hidden_width=_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
              split_heads=False, strided_kernel=True,
              check=no_checks, family="attention"),)
