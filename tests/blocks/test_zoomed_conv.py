"""FasterSeg's zoomed convolution: integer-only, and a conv at half resolution."""

import keras
import numpy as np
import pytest

from mobileseg.blocks.zoomed_conv import ZoomedConv
from tests.blocks.test_conv import assert_integer_only, built
from tests.layer_checks import check_layer


@pytest.mark.parametrize("strides", [1, 2])
def test_zoomed_conv_passes_layer_checks(strides, tmp_path):
    report = check_layer(lambda: ZoomedConv(12, strides=strides), [(1, 16, 16, 8)], tmp_path)
    assert report["fp32_ops"].count("RESIZE_BILINEAR") == (2 if strides == 1 else 1)
    assert_integer_only(report)


def test_zoomed_conv_works_at_half_resolution():
    x = np.random.default_rng(0).normal(size=(1, 12, 12, 4)).astype(np.float32)
    layer = built(ZoomedConv(6), x.shape)
    half = keras.ops.image.resize(x, (6, 6), interpolation="bilinear")
    expected = keras.ops.relu(keras.ops.image.resize(layer.conv(half, training=False), (12, 12)))
    np.testing.assert_allclose(layer(x, training=False), expected, atol=1e-5)
    assert tuple(ZoomedConv(6, strides=2)(np.zeros((1, 11, 11, 4), "float32")).shape) == (1, 6, 6, 6)
