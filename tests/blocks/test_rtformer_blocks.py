"""RTFormer's dual-resolution block: the official EABlock order, and one XNNPACK partition."""

import numpy as np
import pytest
from keras import ops

from mobileseg.blocks.rtformer_blocks import RTFormerBlock
from tests.layer_checks import randomized


def test_rtformer_block_follows_the_official_eablock_order():
    rng = np.random.default_rng(3)
    high, low = rng.normal(size=(1, 16, 16, 8)).astype("float32"), rng.normal(size=(1, 8, 8, 12)).astype("float32")
    block = randomized(RTFormerBlock(8, low_dim=16, num_heads=2, low_strides=2, context_size=2),
                       [high.shape, low.shape])
    got_high, got_low = block([high, low], training=False)
    want_low = block.low_block(low, training=False)
    compressed = np.asarray(block.compression(want_low, training=False))
    want_high = high + np.asarray(ops.image.resize(compressed, (16, 16), interpolation="bilinear"))
    want_high = want_high + np.asarray(block.high_block.cross_attn([want_high, want_low], training=False))
    want_high = want_high + np.asarray(block.high_block.mlp(want_high, training=False))
    want_low = np.asarray(want_low) + np.asarray(block.down(want_high, training=False))
    np.testing.assert_allclose(got_high, want_high, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_low, want_low, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["fp32", "int8"])
def test_an_rtformer_block_runs_in_one_xnnpack_partition(mode):
    """No PADV2 (the double normalization's extra unit is concatenated), no GATHER (the adaptive pool of a
    map its bins do not divide takes slices), and the LOG in float: XNNPACK runs the whole block."""
    import keras

    from mobileseg.deploy import tflite_convert
    from mobileseg.litert_measure import measure_tflite

    high, low = keras.Input((20, 20, 16), batch_size=1), keras.Input((10, 10, 24), batch_size=1)
    block = RTFormerBlock(16, low_dim=32, num_heads=4, low_strides=2, context_size=3)
    model = keras.Model([high, low], block([high, low]))
    shapes = [(1, 20, 20, 16), (1, 10, 10, 24)]
    flatbuffer = tflite_convert.convert(model, mode, representative=tflite_convert.random_representative(
        shapes, num_samples=4))
    record = measure_tflite(flatbuffer, threads=1, min_runs=5, max_runs=5)
    assert (record.xnnpack_partitions, list(record.fallback_ops)) == (1, [])
