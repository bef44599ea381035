"""The int8-only LayerNorm: Keras' result, and no NEG or float island in int8."""

import keras
import numpy as np

from mobileseg.blocks.layer_norm import LayerNorm
from tests.blocks.test_conv import assert_integer_only
from tests.layer_checks import check_layer


def test_layer_norm_matches_keras_and_stays_int8(tmp_path):
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(2, 4, 4, 8)).astype(np.float32)
    for axis in (-1, [1, 2, 3]):
        ours, theirs = LayerNorm(axis=axis, epsilon=1e-5), keras.layers.LayerNormalization(axis=axis, epsilon=1e-5)
        ours.build(x.shape)
        theirs.build(x.shape)
        rng = np.random.default_rng(2)
        weights = [rng.normal(size=w.shape).astype(np.float32) for w in theirs.get_weights()]
        ours.set_weights(weights)
        theirs.set_weights(weights)
        np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)
    report = check_layer(lambda: LayerNorm(epsilon=1e-5), [(1, 8, 8, 16)], tmp_path)
    assert "NEG" not in report["int8_ops"]
    assert_integer_only(report)
