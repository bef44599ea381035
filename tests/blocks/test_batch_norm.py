"""BatchNorm: the fused kernel in training computes what Keras' BatchNormalization computes, and only there."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.blocks.batch_norm import BatchNorm, batch_norm
from tests.layer_checks import check_layer


def pair(**kwargs):
    """A BatchNorm and a Keras BatchNormalization with the same settings and weights."""
    fused, plain = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    fused.build((None, 5, 6, 4))
    plain.build((None, 5, 6, 4))
    rng = np.random.default_rng(1)
    weights = [w + rng.normal(0, 0.3, w.shape).astype("float32") for w in plain.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a positive moving variance
    fused.set_weights(weights)
    plain.set_weights(weights)
    return fused, plain


@pytest.mark.parametrize("settings", [dict(epsilon=1e-5, momentum=0.9), dict(center=False, scale=False)])
def test_a_training_step_gives_the_outputs_gradients_and_statistics_of_keras(settings):
    fused, plain = pair(**settings)
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (3, 5, 6, 4)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(2).normal(size=(3, 5, 6, 4)).astype("float32"))
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, *layer.trainable_variables])
        results.append((y.numpy(), [g.numpy() for g in grads]))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=2e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, atol=2e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-6)
    n = 3 * 5 * 6  # the fused kernel moves towards the unbiased batch variance, Keras towards the biased one
    batch_var = np.var(x.numpy(), axis=(0, 1, 2))
    expected = plain.moving_variance.numpy() + (1 - plain.momentum) * batch_var * (n / (n - 1) - 1)
    np.testing.assert_allclose(fused.moving_variance.numpy(), expected, rtol=1e-5)


def test_the_fused_kernel_runs_in_training_only():
    fused, _ = pair()
    x = np.ones((2, 5, 6, 4), "float32")
    step = tf.function(lambda: fused(x, training=True)).get_concrete_function()
    assert any("FusedBatchNorm" in op.type for op in step.graph.get_operations())
    infer = tf.function(lambda: fused(x, training=False)).get_concrete_function()
    assert not any("FusedBatchNorm" in op.type for op in infer.graph.get_operations())


def test_other_ranks_and_frozen_layers_take_keras_path():
    tokens = np.random.default_rng(3).normal(size=(2, 7, 4)).astype("float32")
    np.testing.assert_allclose(BatchNorm()(tokens, training=True), keras.layers.BatchNormalization()(
        tokens, training=True), atol=1e-5)
    fused, plain = pair()
    fused.trainable = plain.trainable = False  # frozen: moving statistics, no update
    images = np.random.default_rng(4).normal(size=(2, 5, 6, 4)).astype("float32")
    before = fused.moving_mean.numpy()
    np.testing.assert_allclose(fused(images, training=True), plain(images, training=True), atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_bfloat16_inputs_keep_float32_statistics():
    layer = BatchNorm(dtype="mixed_bfloat16")
    y = layer(tf.constant(np.random.default_rng(5).normal(size=(2, 4, 4, 3)), tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16 and layer.moving_mean.dtype == "float32"
    assert np.all(np.isfinite(layer.moving_variance.numpy()))


def test_batch_norm_passes_the_layer_checks(tmp_path):
    check_layer(lambda: batch_norm("bn", epsilon=1e-3), [(1, 8, 8, 4)], tmp_path)
