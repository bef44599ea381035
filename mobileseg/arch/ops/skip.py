"""The ``skip`` op: the identity, how a search drops a cell (no block of the latency table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import keras

from mobileseg.arch.genotype import Cell
from mobileseg.arch.ops.spec import OpSpec, no_checks, no_hidden, no_residual, no_structure


@dataclass(frozen=True)
class Skip(Cell):
    """Identity: lets a search drop a cell (depth choice)."""

    OP: ClassVar[str] = "skip"


def _layer(cell: Skip, in_channels: int, name: str):
    return keras.layers.Identity(name=name)


def _forward(layer, x, context, args, training, momentum, kernel):
    return x


OPS = (OpSpec(Skip, layer=_layer, latency_block=False, forward=_forward, elastic_fields=(), hidden_width=no_hidden,
              se_width=no_hidden, residual=no_residual, structure=no_structure, split_heads=False,
              strided_kernel=True,
              check=no_checks, family="skip"),)
