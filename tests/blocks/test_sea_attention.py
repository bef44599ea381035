import keras
import numpy as np
import pytest

from mobileseg.blocks.sea_attention import SeaAttention, SeaFormerBlock, SeaFormerMlp, linear_resize_matrix
from tests.layer_checks import check_layer, randomized, softmax, trainable_count


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: randomized(SeaAttention(16, key_dim=4, num_heads=2), [(1, 16, 12, 16)]), (1, 16, 12, 16)),
    (lambda: randomized(SeaFormerBlock(16, key_dim=4, num_heads=2, mlp_ratio=2.0, activation="relu6"),
                        [(1, 16, 16, 16)]), (1, 16, 16, 16)),
], ids=["sea_attention", "seaformer_block"])
def test_sea_layers_pass_layer_checks(make_layer, shape, tmp_path):
    # Attention quantizes worse than a convolution: the softmax output is int8 with a fixed
    # 1/256 scale, and q.k, attention.v and hard_sigmoid(global) * detail multiply two
    # quantized activations. Measured: 0.014 (attention) and 0.025 (block) of the output's
    # std; 0.1 is allowed.
    report = check_layer(make_layer, [shape], tmp_path, int8_max_relative_error=0.1)
    assert report["fp32_ops"].count("SOFTMAX") == 2  # one per axis


def torch_linear_resize(values, size):
    """PyTorch F.interpolate(mode="linear", align_corners=False) of (C, L) -> (C, size)."""
    length = values.shape[-1]
    source = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, None)
    return np.stack([np.interp(source, np.arange(length), row) for row in values])


def test_linear_resize_matrix_matches_pytorch_interpolation():
    values = np.random.default_rng(0).normal(size=(3, 16))
    for size in (16, 8, 5, 32, 1):
        np.testing.assert_allclose(values @ linear_resize_matrix(16, size), torch_linear_resize(values, size),
                                   atol=1e-6)


def official_sea_attention(layer, x):
    """The official Sea_Attention.forward, transcribed in NCHW numpy around the layer's convs."""
    nchw = lambda t: np.transpose(np.asarray(t), (0, 3, 1, 2))  # noqa: E731
    nhwc = lambda t: np.transpose(t, (0, 2, 3, 1))  # noqa: E731
    act = lambda t: np.maximum(t, 0)  # noqa: E731  (layer built with relu)
    batch, height, width, _ = x.shape
    heads, key_dim, dh = layer.num_heads, layer.key_dim, layer.v_channels
    q, k, v = (nchw(conv(x, training=False)) for conv in (layer.to_q, layer.to_k, layer.to_v))
    qkv = np.concatenate([q, k, v], axis=1)
    qkv = nchw(layer.pwconv(layer.dwconv(nhwc(qkv), training=False), training=False))

    def pos(t, weight):
        return t + torch_linear_resize(np.asarray(weight).T, t.shape[-1])[None]

    def axis_attention(q_s, k_s, v_s, length, q_pos, k_pos):
        q_s = pos(q_s, q_pos).reshape(batch, heads, -1, length).transpose(0, 1, 3, 2)
        k_s = pos(k_s, k_pos).reshape(batch, heads, -1, length)
        v_s = v_s.reshape(batch, heads, -1, length).transpose(0, 1, 3, 2)
        attn = softmax(q_s @ k_s * key_dim ** -0.5)
        return (attn @ v_s).transpose(0, 1, 3, 2)

    row = axis_attention(q.mean(-1), k.mean(-1), v.mean(-1), height, layer.pos_emb_rowq, layer.pos_emb_rowk)
    row = nchw(layer.proj_encode_row(act(nhwc(row.reshape(batch, dh, height, 1))), training=False))
    column = axis_attention(q.mean(-2), k.mean(-2), v.mean(-2), width, layer.pos_emb_columnq,
                            layer.pos_emb_columnk)
    column = nchw(layer.proj_encode_column(act(nhwc(column.reshape(batch, dh, 1, width))), training=False))
    xx = v + (row + column)
    xx = nchw(layer.proj(act(nhwc(xx)), training=False))
    hard_sigmoid = np.clip(xx + 3, 0, 6) / 6
    return nhwc(hard_sigmoid * qkv)


def test_sea_attention_matches_the_official_forward():
    x = np.random.default_rng(1).normal(size=(2, 10, 7, 24)).astype("float32")
    layer = randomized(SeaAttention(24, key_dim=6, num_heads=3), [x.shape])
    np.testing.assert_allclose(layer(x, training=False), official_sea_attention(layer, x), rtol=1e-4, atol=1e-4)


def test_projection_bns_start_at_zero_like_the_official_bn_weight_init():
    layer = SeaAttention(16, key_dim=4, num_heads=2)
    layer.build((None, 8, 8, 16))
    for conv in (layer.proj, layer.proj_encode_row, layer.proj_encode_column):
        assert not np.any(np.asarray(conv.bn.gamma))
    assert np.all(np.asarray(layer.to_q.bn.gamma) == 1)


def test_seaformer_block_parameter_count_matches_the_official_block():
    # SeaFormer-T's first attention stage: dim 128, key_dim 16, 4 heads, mlp_ratio 2.
    dim, key_dim, heads, mlp_ratio = 128, 16, 4, 2
    nh_kd, dh = key_dim * heads, 2 * key_dim * heads
    conv_bn = lambda cin, cout: cin * cout + 2 * cout  # noqa: E731  (bias-free conv + BN scale/shift)
    attention = (2 * conv_bn(dim, nh_kd) + conv_bn(dim, dh)            # to_q, to_k, to_v
                 + conv_bn(dh, dim) + 2 * conv_bn(dh, dh)              # proj, proj_encode_row/column
                 + 4 * nh_kd * 16                                      # four 16-long positional embeddings
                 + 9 * 2 * dh + 2 * 2 * dh + conv_bn(2 * dh, dim))     # dwconv (depthwise + BN), pwconv
    hidden = dim * mlp_ratio
    mlp = conv_bn(dim, hidden) + 9 * hidden + hidden + conv_bn(hidden, dim)
    block = SeaFormerBlock(dim, key_dim=key_dim, num_heads=heads, mlp_ratio=mlp_ratio)
    block.build((None, 16, 16, dim))
    assert trainable_count(block.attn) == attention == 123_136
    assert trainable_count(block.mlp) == mlp == 68_864
    assert trainable_count(block) == attention + mlp


def test_drop_path_is_identity_at_inference_and_random_in_training():
    x = np.random.default_rng(2).normal(size=(16, 8, 8, 16)).astype("float32")
    block = randomized(SeaFormerBlock(16, key_dim=4, num_heads=2, drop_path=0.5), [x.shape])
    plain = SeaFormerBlock(16, key_dim=4, num_heads=2)
    plain.build(x.shape)
    plain.set_weights(block.get_weights())
    np.testing.assert_allclose(block(x, training=False), plain(x, training=False), atol=1e-5)
    keras.utils.set_random_seed(0)
    trained = np.asarray(block(x, training=True))
    assert not np.allclose(trained, np.asarray(plain(x, training=True)), atol=1e-5)
    with pytest.raises(ValueError, match="drop_path"):
        SeaFormerBlock(16, key_dim=4, num_heads=2, drop_path=1.0)


def test_mlp_hidden_width_follows_the_ratio():
    mlp = SeaFormerMlp(24, mlp_ratio=4.0)
    mlp.build((None, 4, 4, 24))
    assert mlp.hidden_dim == 96 and mlp.fc1.filters == 96


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="dim=16 but the input has 8 channels"):
        SeaAttention(16, key_dim=4, num_heads=2).build((None, 8, 8, 8))
    with pytest.raises(ValueError, match="num_heads"):
        SeaAttention(16, key_dim=4, num_heads=0)
    with pytest.raises(ValueError, match="static height and width"):
        SeaAttention(16, key_dim=4, num_heads=2).build((None, None, None, 16))
    with pytest.raises(ValueError, match="unknown activation"):
        SeaFormerBlock(16, key_dim=4, num_heads=2, activation="swishy")
