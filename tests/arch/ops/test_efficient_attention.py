"""SegFormer's op: token merging needs a mode and a ratio together, the ratio in [0, 1)."""

from mobileseg.arch.ops.efficient_attention import EfficientAttention
from mobileseg.arch.ops.registry import op_spec


def test_token_merging_settings_are_checked():
    check = op_spec("efficient_attention").check
    assert check(EfficientAttention(heads=2), 8) == ()
    assert check(EfficientAttention(heads=2, tome_mode="kv_bsm", tome_ratio=0.5), 8) == ()
    assert check(EfficientAttention(heads=2, tome_mode="kv_bsm", tome_ratio=1.0), 8)[0][0] == "tome_ratio"
    assert "needs both" in check(EfficientAttention(heads=2, tome_mode="q_pool"), 8)[0][1]


def test_its_ffn_width_follows_the_ratio_and_its_heads_split_the_width():
    spec = op_spec("efficient_attention")
    assert spec.hidden_width(EfficientAttention(heads=2, mlp_ratio=2.5), 16) == 40
    assert spec.split_heads and spec.elastic_fields == ("mlp_ratio",)
