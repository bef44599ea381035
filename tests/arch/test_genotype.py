import dataclasses

import pytest

from mobileseg.arch.genotype import Branch, Genotype, Head, Ref
from mobileseg.arch.ops.convolutions import Conv, MBConv
from mobileseg.arch.ops.efficient_attention import EfficientAttention
from mobileseg.arch.ops.fuse import Fuse
from mobileseg.arch.ops.sea_attention import SeaAttention
from mobileseg.arch.ops.skip import Skip


def two_branch() -> Genotype:
    return Genotype(
        name="two",
        branches=(
            Branch("main", None, (Conv(width=8, stride=2), MBConv(width=16, stride=2),
                                  Fuse(context=Ref("low", -1), width=16))),
            Branch("low", Ref("main", 1), (MBConv(width=32, stride=2), SeaAttention(heads=2, key_dim=8),
                                           Skip())),
        ),
        head=Head(op="light", inputs=(Ref("main", -1),), width=16))


def test_strides_follow_sources_and_cells():
    assert two_branch().cell_strides() == {"main": (2, 4, 4), "low": (8, 8, 8)}


def test_resolve_negative_index():
    assert two_branch().resolve(Ref("low", -1)) == ("low", 2)


def test_widths_kept_by_attention_and_skip():
    g = two_branch()
    assert SeaAttention(heads=2, key_dim=8).out_width(32) == 32
    assert Skip().out_width(7) == 7
    assert g.branch("main").cells[2].out_width(99) == 16


def test_cells_are_frozen_and_hashable():
    cell = EfficientAttention(heads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.heads = 3
    assert hash(two_branch()) == hash(two_branch())


def test_replace_cells_changes_only_what_it_returns():
    g = two_branch().replace_cells(lambda b, i, c: Skip() if (b, i) == ("low", 1) else c)
    assert g.branch("low").cells[1] == Skip()
    assert g.branch("main") == two_branch().branch("main")


def test_cell_shapes_follow_strides_widths_and_contexts():
    shapes = two_branch().cell_shapes((45, 60))
    assert shapes[("main", 0)].input == (45, 60, 3)
    assert shapes[("main", 1)].output == (12, 15, 16)
    assert shapes[("low", 0)].output == (6, 8, 32)
    assert shapes[("low", 2)].output == (6, 8, 32)
    assert shapes[("main", 2)].context == (6, 8, 32)
    assert shapes[("main", 2)].output == (12, 15, 16)
