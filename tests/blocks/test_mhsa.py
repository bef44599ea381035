import numpy as np
import pytest
from keras import ops

from mobileseg.blocks.mhsa import MemoryEfficientMHSA
from tests.layer_checks import check_layer, randomized, softmax, trainable_count


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: randomized(MemoryEfficientMHSA(16), [(1, 8, 8, 16)]), (1, 8, 8, 16)),
    (lambda: randomized(MemoryEfficientMHSA(32, num_heads=2, strides=2), [(1, 16, 16, 16)]), (1, 16, 16, 16)),
    (lambda: randomized(MemoryEfficientMHSA(16, attention_stride=2), [(1, 16, 16, 16)]), (1, 16, 16, 16)),
], ids=["cell", "strided_two_heads", "half_resolution_attention"])
def test_mhsa_passes_layer_checks(make_layer, shape, tmp_path):
    # The unscaled logits (official SAGAN attention) widen the int8 softmax input and q.k,
    # attention.v multiply quantized activations; measured 0.013 of the output's std with
    # random weights. 0.1 is allowed.
    check_layer(make_layer, [shape], tmp_path, int8_max_relative_error=0.1)


def official_self_attn(layer, x):
    """HyCTAS Self_Attn / SAHead forward around the layer's convs, with ATT transcribed in numpy."""
    shortcut = x if layer.shortcut is None else np.asarray(layer.shortcut(x, training=False))
    y = np.asarray(layer.net1(x, training=False))
    height, width = y.shape[1:3]
    if layer.attention_stride == 2:
        y = np.asarray(ops.image.resize(y, ((height + 1) // 2, (width + 1) // 2), interpolation="bilinear"))
    batch, h, w, channels = y.shape
    query = np.asarray(layer.query(y)).reshape(batch, h * w, -1)                       # (B, N, C/8)
    key = np.asarray(layer.key(y)).reshape(batch, h * w, -1).transpose(0, 2, 1)       # (B, C/8, N)
    value = np.asarray(layer.value(y)).reshape(batch, h * w, channels).transpose(0, 2, 1)  # (B, C, N)
    attention = softmax(query @ key, axis=-1)
    out = (value @ attention.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(batch, h, w, channels)
    y = float(np.asarray(layer.gamma)) * out + y
    if layer.strides == 2:
        y = y.reshape(batch, h // 2, 2, w // 2, 2, channels).mean(axis=(2, 4))
    y = np.maximum(np.asarray(layer.attention_norm(y, training=False)), 0)
    if layer.attention_stride == 2:
        y = np.asarray(ops.image.resize(y, (height, width), interpolation="bilinear"))
    y = np.asarray(layer.net3(y, training=False))
    return np.maximum(y + shortcut, 0)


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: MemoryEfficientMHSA(16), (2, 6, 8, 16)),
    (lambda: MemoryEfficientMHSA(24, strides=2), (1, 8, 8, 8)),
    (lambda: MemoryEfficientMHSA(16, attention_stride=2), (1, 8, 12, 16)),
], ids=["cell", "strided", "sahead"])
def test_single_head_matches_the_official_attention(make_layer, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = randomized(make_layer(), [shape])
    np.testing.assert_allclose(layer(x, training=False), official_self_attn(layer, x), rtol=1e-4, atol=1e-4)


def test_attention_starts_switched_off_like_the_official_init():
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 16)).astype("float32")
    layer = MemoryEfficientMHSA(16)
    out = np.asarray(layer(x, training=False))
    assert float(np.asarray(layer.gamma)) == 0.0 and not np.any(np.asarray(layer.net3.bn.gamma))
    np.testing.assert_allclose(out, np.maximum(x, 0), atol=1e-6)  # identity shortcut + zero branch, ReLU


def test_query_and_key_are_an_eighth_of_the_width():
    layer = MemoryEfficientMHSA(64)
    layer.build((None, 8, 8, 32))
    assert layer.key_channels == 8 and layer.query.filters == layer.key.filters == 8 and layer.value.filters == 64
    conv_bn = lambda cin, cout, k=1: k * k * cin * cout + 2 * cout  # noqa: E731
    expected = (conv_bn(32, 64) + conv_bn(32, 64)               # shortcut (width changes), net1
                + 2 * (64 * 8 + 8) + 64 * 64 + 64 + 1          # query, key, value convs with biases, gamma
                + 2 * 64 + conv_bn(64, 64))                    # attention BN, net3
    assert trainable_count(layer) == expected
    two_heads = MemoryEfficientMHSA(64, num_heads=2, key_dim=16)
    two_heads.build((None, 8, 8, 64))
    assert two_heads.key_channels == 32 and two_heads.shortcut is None


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="dim=30 is not divisible by num_heads=4"):
        MemoryEfficientMHSA(30, num_heads=4)
    with pytest.raises(ValueError, match="attention_stride=2 .* needs strides=1"):
        MemoryEfficientMHSA(16, strides=2, attention_stride=2)
    with pytest.raises(ValueError, match="attention_stride must be 1 or 2"):
        MemoryEfficientMHSA(16, attention_stride=4)
    with pytest.raises(ValueError, match="key_dim"):
        MemoryEfficientMHSA(16, key_dim=0)
