"""The ``fuse`` op: another branch's feature merged in, ``sum`` or ``gate`` (`mobileseg.blocks.fusion`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from keras import ops

from mobileseg.arch.genotype import Cell, Ref, choices, positive
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure
from mobileseg.blocks.elastic import conv_bn_act, width_mask
from mobileseg.blocks.fusion import SigmoidGateFusion, SumFusion, resize_to

FUSE_MODES = ("sum", "gate")
"""How a ``fuse`` cell merges: add both (HRNet, HyCTAS) or gate this branch by the other (SeaFormer)."""


@dataclass(frozen=True)
class Fuse(Cell):
    """Merge another branch's feature into this one: ``sum`` (HRNet/HyCTAS) or ``gate`` (SeaFormer)."""

    OP: ClassVar[str] = "fuse"
    context: Ref = field()
    width: int = field(metadata=positive())
    mode: str = field(default="gate", metadata=choices(*FUSE_MODES))


def _layer(cell: Fuse, in_channels: int, name: str):
    fusion_class = SigmoidGateFusion if cell.mode == "gate" else SumFusion
    return fusion_class(cell.width, name=name)


def _forward(layer, x, context, args, training, momentum, kernel):
    mask = width_mask(args.out_width, layer.filters, x.dtype)
    size = ops.shape(x)[1:3]
    if hasattr(layer, "project_x"):  # SumFusion
        local = conv_bn_act(layer.project_x, x, mask, training, momentum)
        return local + resize_to(conv_bn_act(layer.project_context, context, mask, training, momentum), size)
    local = conv_bn_act(layer.local_embedding, x, mask, training, momentum)
    gate = layer._gate(conv_bn_act(layer.global_act, context, mask, training, momentum))
    return local * resize_to(gate, size)


OPS = (OpSpec(Fuse, layer=_layer, latency_block=True, forward=_forward, elastic_fields=("width",),
              hidden_width=no_hidden, se_width=no_hidden, residual=no_residual, structure=no_structure,
              split_heads=False, strided_kernel=True,
              check=no_checks, family="fuse"),)
