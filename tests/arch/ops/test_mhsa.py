"""HyCTAS' op: heads split the input width; nothing of it is elastic but the widths around it."""

from mobileseg.arch.ops.mhsa import MHSA
from mobileseg.arch.ops.registry import op_spec


def test_its_facets():
    spec = op_spec("mhsa")
    assert spec.split_heads and spec.elastic_fields == () and spec.family == "attention"
    assert spec.hidden_width(MHSA(heads=2, key_dim=4), 16) == 0
