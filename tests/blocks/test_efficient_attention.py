import keras
import numpy as np
import pytest

from mobileseg.blocks.efficient_attention import EfficientAttention, MixFFN, SegFormerBlock
from tests.layer_checks import check_layer, randomized, softmax, trainable_count


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: randomized(EfficientAttention(16, num_heads=2, sr_ratio=2), [(1, 16, 16, 16)]), (1, 16, 16, 16)),
    (lambda: randomized(MixFFN(16), [(1, 8, 8, 16)]), (1, 8, 8, 16)),
    (lambda: randomized(SegFormerBlock(16, num_heads=1, sr_ratio=1), [(1, 8, 8, 16)]), (1, 8, 8, 16)),
], ids=["efficient_attention", "mix_ffn", "segformer_block"])
def test_segformer_layers_pass_layer_checks(make_layer, shape, tmp_path):
    # Attention quantizes worse than a convolution: LayerNorm on the reduced tokens and the
    # softmax (fixed 1/256 output scale) are coarse in int8, and q.k and attention.v
    # multiply two quantized activations. Measured: 0.021 (attention), 0.028 (block) of
    # the output's std; 0.1 is allowed.
    check_layer(make_layer, [shape], tmp_path, int8_max_relative_error=0.1)


def official_attention(layer, x):
    """NVlabs SegFormer Attention.forward (mix_transformer.py) in numpy around the layer's dense/conv/norm."""
    batch, height, width, channels = x.shape
    heads = layer.num_heads
    tokens = x.reshape(batch, height * width, channels)
    q = np.asarray(layer.q(tokens)).reshape(batch, -1, heads, channels // heads).transpose(0, 2, 1, 3)
    if layer.sr_ratio > 1:
        reduced = np.asarray(layer.sr(x))
        x_ = np.asarray(layer.norm(reduced.reshape(batch, -1, channels)))
    else:
        x_ = tokens
    kv = np.asarray(layer.kv(x_)).reshape(batch, -1, 2, heads, channels // heads).transpose(2, 0, 3, 1, 4)
    k, v = kv[0], kv[1]
    attn = softmax(q @ k.transpose(0, 1, 3, 2) * (channels // heads) ** -0.5)
    out = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, -1, channels)
    return np.asarray(layer.proj(out)).reshape(batch, height, width, channels)


@pytest.mark.parametrize("heads, sr_ratio, shape", [(2, 2, (2, 8, 6, 16)), (1, 1, (1, 5, 5, 8)),
                                                     (5, 4, (1, 9, 8, 20))])
def test_efficient_attention_matches_the_official_forward(heads, sr_ratio, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = randomized(EfficientAttention(shape[-1], num_heads=heads, sr_ratio=sr_ratio), [shape])
    np.testing.assert_allclose(layer(x), official_attention(layer, x), rtol=1e-4, atol=1e-4)


def test_segformer_block_is_pre_norm_with_residuals():
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 16)).astype("float32")
    block = randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2), [x.shape])
    y = x + np.asarray(block.attn(block.norm1(x)))
    y = y + np.asarray(block.mlp(block.norm2(y)))
    np.testing.assert_allclose(block(x), y, rtol=1e-5, atol=1e-5)
    assert block.norm1.epsilon == block.norm2.epsilon == 1e-6 and block.attn.norm.epsilon == 1e-5


def test_segformer_block_parameter_count_matches_the_official_block():
    # SegFormer-B0's second stage: dim 64, 2 heads, sr_ratio 4, mlp_ratio 4.
    dim, sr, hidden = 64, 4, 256
    layer_norm = 2 * dim
    attention = (dim * dim + dim) + (dim * 2 * dim + 2 * dim) + (dim * dim + dim)   # q, kv, proj
    attention += sr * sr * dim * dim + dim + layer_norm                              # sr conv + its LayerNorm
    ffn = (dim * hidden + hidden) + (9 * hidden + hidden) + (hidden * dim + dim)    # fc1, dwconv, fc2
    block = SegFormerBlock(dim, num_heads=2, sr_ratio=sr, mlp_ratio=4.0)
    block.build((None, 32, 32, dim))
    assert trainable_count(block.attn) == attention == 82_368
    assert trainable_count(block.mlp) == ffn == 35_648
    assert trainable_count(block) == 2 * layer_norm + attention + ffn


def test_mix_ffn_uses_exact_gelu_and_the_ratio():
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 8)).astype("float32")
    ffn = randomized(MixFFN(8, mlp_ratio=2.0), [x.shape])
    hidden = np.asarray(ffn.dwconv(ffn.fc1(x)))
    want = np.asarray(ffn.fc2(keras.ops.convert_to_numpy(keras.activations.gelu(hidden, approximate=False))))
    np.testing.assert_allclose(ffn(x), want, rtol=1e-5, atol=1e-5)
    assert ffn.hidden_dim == 16


def test_drop_path_is_identity_at_inference():
    x = np.random.default_rng(3).normal(size=(4, 8, 8, 16)).astype("float32")
    block = randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2, drop_path=0.3), [x.shape])
    plain = SegFormerBlock(16, num_heads=2, sr_ratio=2)
    plain.build(x.shape)
    plain.set_weights(block.get_weights())
    np.testing.assert_allclose(block(x, training=False), plain(x, training=False), atol=1e-5)


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="dim=30 is not divisible by num_heads=4"):
        SegFormerBlock(30, num_heads=4)
    with pytest.raises(ValueError, match="unknown tome_mode 'kv_magic'"):
        SegFormerBlock(32, num_heads=2, tome_mode="kv_magic", tome_ratio=0.5)
    with pytest.raises(ValueError, match=r"tome_ratio must be a number in \[0, 1\)"):
        SegFormerBlock(32, num_heads=2, tome_mode="kv_bsm", tome_ratio=1.5)
    with pytest.raises(ValueError, match="smaller than sr_ratio=8"):
        EfficientAttention(16, num_heads=1, sr_ratio=8).build((None, 4, 4, 16))
    with pytest.raises(ValueError, match="dim=16 but the input has 8 channels"):
        EfficientAttention(16, num_heads=1).build((None, 4, 4, 8))
