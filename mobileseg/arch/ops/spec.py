"""What an op declares in one place: `OpSpec`, one per genotype op (``conv``, ``mbconv``, ...).

The builder, the supernet, the latency table and the schema checks look an op up in
`mobileseg.arch.ops.registry` and use its facets instead of branching on its name. The
functions below (`no_hidden`, ...) are the facet values of an op that has no such thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mobileseg.arch.genotype import Cell


@dataclass(frozen=True)
class OpSpec:
    """Every facet of one op; none has a default, so an op module spells each out.

    Attributes:
        cell: the genotype dataclass (its ``OP`` is the op's name in YAML files).
        layer: ``layer(cell, in_channels, name)`` -> the Keras layer `build_model` puts in a network.
        latency_block: whether a cell of this op is a block of the latency table; its
            signature is its fields and shapes (`mobileseg.latency.blocks.cell_signature`).
        forward: the supernet's elastic forward ``forward(layer, x, context, args, training,
            momentum, kernel)``: ``layer`` (built at the widest variant) run as the variant the
            active sizes ``args`` (`mobileseg.supernet.elastic.CellArgs`) describe, ``kernel`` the
            active kernel size or None; zero past the active output width
            (`mobileseg.blocks.elastic` says how).
        elastic_fields: the fields one shared (widest) layer serves by masking channels or a
            kernel's border (`mobileseg.supernet.plan`); every other field makes its own layer.
        hidden_width: ``hidden_width(cell, in_width)``: the inner width the block derives from its
            input width (mirrors the block's constructor; 0 without one).
        se_width: ``se_width(cell, in_width)``: the squeeze-excite width (0 without SE).
        residual: ``residual(cell, in_width)``: whether the variant adds its input to its output
            where the widest variant might not.
        structure: ``structure(cell, in_width)``: ``(name, value)`` pairs beyond the cell's fields
            that two variants must share to share one layer.
        split_heads: whether the attention heads split the input width (the heads must divide it).
        strided_kernel: whether the kernel runs at the cell's stride (``zoomed_conv``'s runs at 1
            between its resizes).
        check: ``check(cell, in_width)`` -> ``((field, problem), ...)``: what makes the cell invalid
            at that input width beyond its fields' own ranges (`mobileseg.arch.schema_io` reports the
            first); heads that must divide the width are ``split_heads``.
        family: ``conv``, ``attention``, ``fuse`` or ``skip`` (an attention op needs a feature map,
            not the image; the run report colours boxes by family).
    """

    cell: type[Cell]
    layer: Callable
    latency_block: bool
    forward: Callable
    elastic_fields: tuple
    hidden_width: Callable
    se_width: Callable
    residual: Callable
    structure: Callable
    split_heads: bool
    strided_kernel: bool
    check: Callable
    family: str

    @property
    def op(self) -> str:
        """The op's name, ``cell.OP``."""
        return self.cell.OP


def no_hidden(cell: Cell, in_width: int) -> int:
    """``hidden_width`` and ``se_width`` of an op without one: 0."""
    return 0


def no_residual(cell: Cell, in_width: int) -> bool:
    """``residual`` of an op whose output never adds a width-dependent input: False."""
    return False


def no_checks(cell: Cell, in_width: int) -> tuple:
    """``check`` of an op whose fields' ranges say all: no problem, ``()``."""
    return ()


def no_structure(cell: Cell, in_width: int) -> tuple:
    """``structure`` of an op whose fields say all its layer's structure: ``()``."""
    return ()
