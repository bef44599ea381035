"""RTFormer's ops: GFA's heads split the width and its memory units; FFN hidden width = input width."""

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.ops.registry import op_spec
from mobileseg.arch.ops.rtformer import CrossAttention, GFAttention
from mobileseg.arch.schema_io import GenotypeError


def test_gfa_heads_must_divide_its_memory_units():
    assert op_spec("gfa_attention").check(GFAttention(heads=3, units=8), 12) == (
        ("units", "3 heads do not divide 8 memory units"),)
    assert op_spec("gfa_attention").check(GFAttention(heads=2, units=8), 12) == ()


def test_the_schema_reports_the_gfa_problems_in_order():
    text = '''
name: t
branches:
  - {name: m, source: null, cells: [{op: conv, width: 12, stride: 2}, {op: gfa_attention, heads: HEADS, units: 8}]}
head: {op: light, inputs: [{branch: m}], width: 12}
'''
    for heads, message in ((5, r"cells\[1\]\.heads: 5 heads do not divide the input width 12"),
                           (3, r"cells\[1\]\.units: 3 heads do not divide 8 memory units")):
        with pytest.raises(GenotypeError, match=message):
            schema_io.loads(text.replace("HEADS", str(heads)), "t.yaml")


def test_the_rtformer_ffn_keeps_the_input_width():
    assert op_spec("gfa_attention").hidden_width(GFAttention(heads=2, units=8), 24) == 24
    assert op_spec("cross_attention").hidden_width(CrossAttention(context=None), 24) == 24
    assert op_spec("gfa_attention").split_heads and not op_spec("cross_attention").split_heads
