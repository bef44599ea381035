"""The masked primitives: a layer built wide, run with its active channels only, computes the narrow layer."""

import keras
import numpy as np

from mobileseg.blocks.conv import ConvBNAct
from mobileseg.blocks.elastic import batch_norm, conv_bn_act, gather_channels, head_layout, layer_norm, width_mask


def test_batch_norm_updates_the_moving_statistics_of_active_channels_only():
    bn = keras.layers.BatchNormalization(momentum=0.5)
    bn.build((None, 4, 4, 6))
    before = bn.moving_mean.numpy().copy()
    x = np.random.default_rng(0).normal(3.0, 1.0, (2, 4, 4, 6)).astype("float32")
    batch_norm(bn, x, width_mask(4, 6), training=True)
    after = bn.moving_mean.numpy()
    assert np.all(after[:4] != before[:4]) and np.array_equal(after[4:], before[4:])


def test_layer_norm_over_active_channels_equals_a_narrow_layer_norm():
    wide = keras.layers.LayerNormalization(epsilon=1e-6)
    wide.build((None, 6))
    narrow = keras.layers.LayerNormalization(epsilon=1e-6)
    narrow.build((None, 4))
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    x[:, 4:] = 0.0
    out = np.asarray(layer_norm(wide, x, width_mask(4, 6), 4))
    np.testing.assert_allclose(out[:, :4], np.asarray(narrow(x[:, :4])), atol=1e-5)
    assert np.all(out[:, 4:] == 0.0)


def test_a_wide_conv_bn_act_masked_equals_the_narrow_block_with_its_first_channels():
    wide, narrow = ConvBNAct(8, 3, 1, name="wide"), ConvBNAct(5, 3, 1, name="narrow")
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 3)).astype("float32")
    wide(x)
    narrow(x)
    wide.bn.beta.assign(np.random.default_rng(3).normal(size=8).astype("float32"))  # BN of a zero channel is beta
    narrow.conv.kernel.assign(wide.conv.kernel.numpy()[..., :5])
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        getattr(narrow.bn, name).assign(getattr(wide.bn, name).numpy()[:5])
    out = np.asarray(conv_bn_act(wide, x, width_mask(5, 8), training=False))
    np.testing.assert_allclose(out[..., :5], np.asarray(narrow(x, training=False)), atol=1e-5)
    assert np.all(out[..., 5:] == 0.0)


def test_head_layout_maps_narrow_heads_into_the_wide_layout_and_back():
    to_wide, wide_valid, to_narrow, narrow_valid = head_layout(4, 2, 6)
    x = np.arange(1, 7, dtype="float32")[None] * np.array([1, 1, 1, 1, 0, 0], "float32")
    wide = gather_channels(x, to_wide, wide_valid)
    assert np.asarray(wide).tolist() == [[1.0, 2.0, 0.0, 3.0, 4.0, 0.0]]
    assert np.asarray(gather_channels(wide, to_narrow, narrow_valid)).tolist() == [[1.0, 2.0, 3.0, 4.0, 0.0, 0.0]]
