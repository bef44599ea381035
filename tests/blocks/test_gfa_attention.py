"""RTFormer's attentions, FFN and blocks: layer checks, the official forwards, parameter counts, errors."""

import numpy as np
import pytest

from mobileseg.blocks.gfa_attention import CrossResolutionAttention, GFAttention, RTFormerFFN, adaptive_max_pool
from mobileseg.blocks.rtformer_blocks import CrossResolutionBlock, GFABlock, RTFormerBlock
from tests.layer_checks import check_layer, randomized, softmax, trainable_count


@pytest.mark.parametrize("make_layer, shapes, int8_error", [
    (lambda: randomized(GFAttention(32, num_heads=4, strides=2), [(1, 16, 16, 16)]), [(1, 16, 16, 16)], 0.1),
    (lambda: randomized(GFABlock(16, num_heads=4), [(1, 8, 8, 16)]), [(1, 8, 8, 16)], 0.1),
    (lambda: randomized(CrossResolutionAttention(16, context_size=3), [(1, 16, 16, 16), (1, 4, 4, 24)]),
     [(1, 16, 16, 16), (1, 4, 4, 24)], 0.1),
    (lambda: randomized(CrossResolutionBlock(16, context_size=3), [(1, 16, 16, 16), (1, 4, 4, 24)]),
     [(1, 16, 16, 16), (1, 4, 4, 24)], 0.1),
    (lambda: randomized(RTFormerBlock(16, low_dim=32, num_heads=4, low_strides=2, context_size=3),
                        [(1, 16, 16, 16), (1, 8, 8, 24)]), [(1, 16, 16, 16), (1, 8, 8, 24)], 0.25),
], ids=["gfa_strided", "gfa_block", "cross_resolution", "cross_resolution_block", "rtformer_block"])
def test_rtformer_layers_pass_layer_checks(make_layer, shapes, int8_error, tmp_path):
    # GFA's double normalization keeps its int8 range because it runs in log space (see
    # grouped_double_normalization). Measured int8 errors, in output stds: GFA 0.019,
    # cross-resolution 0.009; 0.1 is allowed. The whole dual-resolution block (0.118)
    # chains two attentions, two FFNs, the compression and the down path, each requantized,
    # so it gets check_layer's default 0.25.
    report = check_layer(make_layer, shapes, tmp_path, int8_max_relative_error=int8_error)
    assert "SOFTMAX" in report["int8_ops"]


def official_external_attention(layer, x):
    """PaddleSeg ExternalAttention.forward without cross k/v (_act_dn), in NCHW numpy."""
    logits = np.asarray(layer.key_memory(layer.norm(x, training=False)))
    batch, height, width, units = logits.shape
    grouped = np.transpose(logits, (0, 3, 1, 2)).reshape(batch, layer.num_heads, units // layer.num_heads, -1)
    grouped = softmax(grouped, axis=3)
    grouped = grouped / (grouped.sum(axis=2, keepdims=True) + 1e-6)
    weights = np.transpose(grouped.reshape(batch, units, height, width), (0, 2, 3, 1))
    return np.asarray(layer.value_memory(weights))


@pytest.mark.parametrize("size", [6, 24])
def test_gfa_matches_the_official_double_normalization(size):
    x = np.random.default_rng(0).normal(size=(2, size, size, 12)).astype("float32")
    layer = randomized(GFAttention(16, num_heads=4, memory_units=8), [x.shape])
    # Large random weights make whole unit groups vanish at some tokens, where the 1e-6 counts.
    np.testing.assert_allclose(layer(x, training=False), official_external_attention(layer, x),
                               rtol=1e-4, atol=1e-5)


def torch_adaptive_max_pool(x, size):
    """Adaptive max pooling with PyTorch's bins, NHWC numpy."""
    _, height, width, _ = x.shape
    out = np.zeros((x.shape[0], size, size, x.shape[3]), x.dtype)
    for i in range(size):
        h0, h1 = (i * height) // size, -(-((i + 1) * height) // size)
        for j in range(size):
            w0, w1 = (j * width) // size, -(-((j + 1) * width) // size)
            out[:, i, j] = x[:, h0:h1, w0:w1].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape, size", [((1, 7, 5, 3), 3), ((2, 4, 8, 2), 12), ((1, 24, 12, 2), 12)])
def test_adaptive_max_pool_matches_pytorch_bins(shape, size):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    np.testing.assert_allclose(adaptive_max_pool(x, size), torch_adaptive_max_pool(x, size))


def official_cross_attention(layer, x, context):
    """PaddleSeg EABlock.cross_kv + ExternalAttention with cross k/v (_act_sn), numpy."""
    cs = layer.context_size
    kv = np.asarray(layer.context_kv(torch_adaptive_max_pool(np.asarray(layer.context_norm(
        context, training=False)), cs)))
    kv = np.transpose(kv, (0, 3, 1, 2)).reshape(kv.shape[0], 2 * layer.dim, cs * cs)
    keys, values = kv[:, :layer.dim], kv[:, layer.dim:]                # (B, C, 144) each
    queries = np.asarray(layer.norm(x, training=False))
    logits = np.einsum("bhwc,bcj->bhwj", queries, keys) * (cs * cs) ** -0.5
    return np.einsum("bhwj,bcj->bhwc", softmax(logits, axis=-1), values)


def test_cross_resolution_attention_matches_the_official_forward():
    rng = np.random.default_rng(2)
    x, context = rng.normal(size=(2, 8, 8, 16)).astype("float32"), rng.normal(size=(2, 5, 7, 12)).astype("float32")
    layer = randomized(CrossResolutionAttention(16, context_size=4), [x.shape, context.shape])
    np.testing.assert_allclose(layer([x, context], training=False), official_cross_attention(layer, x, context),
                               rtol=1e-4, atol=1e-4)


def test_parameter_counts_follow_the_official_layers():
    # RTFormer-Slim's first EABlock: high 64 channels, low 128 -> 256, 8 heads, 12x12 context.
    high, low_in, low = 64, 128, 256
    block = RTFormerBlock(high, low_dim=low, num_heads=8, low_strides=2)
    block.build([(None, 64, 128, high), (None, 32, 64, low_in)])
    ffn = lambda c: 2 * c + 2 * (9 * c * c + c)  # noqa: E731  (BN + two biased 3x3 convs)
    gfa_low = 2 * low_in + low_in * low + low * low          # BN, key memory, value memory
    shortcut = 2 * low_in + low_in * low
    cross = 2 * high + 2 * low + low * 2 * high              # BN(x), BN(context), kv conv
    compression = 2 * low + low * high
    down = 2 * high + 9 * high * low // 2 + 2 * low // 2 + 9 * low // 2 * low
    assert trainable_count(block.low_block) == gfa_low + shortcut + ffn(low)
    assert trainable_count(block) == gfa_low + shortcut + ffn(low) + compression + cross + ffn(high) + down
    wide = RTFormerFFN(16, hidden_dim=32)
    wide.build((None, 8, 8, 16))
    assert trainable_count(wide) == 2 * 16 + (9 * 16 * 32 + 32) + (9 * 32 * 16 + 16)
    assert block.low_block.attn.units == low


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="memory_units=12 is not divisible by num_heads=8"):
        GFAttention(16, num_heads=8, memory_units=12)
    with pytest.raises(ValueError, match="strides must be 1 or 2"):
        GFAttention(16, strides=3)
    with pytest.raises(ValueError, match="dim=16 but x has 8 channels"):
        CrossResolutionAttention(16).build([(None, 8, 8, 8), (None, 4, 4, 8)])
    with pytest.raises(ValueError, match="the down path makes"):
        RTFormerBlock(8, low_dim=16, num_heads=2).build([(None, 16, 16, 8), (None, 8, 8, 16)])
