"""SeaFormer's op: its FFN width follows mlp_ratio, which is elastic; its heads do not split the width."""

from mobileseg.arch.ops.registry import op_spec
from mobileseg.arch.ops.sea_attention import SeaAttention


def test_its_ffn_width_follows_the_ratio():
    spec = op_spec("sea_attention")
    assert spec.hidden_width(SeaAttention(heads=2, key_dim=8, mlp_ratio=1.5), 32) == 48
    assert spec.elastic_fields == ("mlp_ratio",) and not spec.split_heads and spec.family == "attention"
