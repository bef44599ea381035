import keras
import numpy as np
import pytest

from mobileseg.quant.folded import BatchNormTerms, FoldedConv, WeightTensor, normalization_as_depthwise
from tests.layer_checks import check_layer


def _lively_bn(channels, seed=0, rank=2):
    rng = np.random.default_rng(seed)
    bn = keras.layers.BatchNormalization(epsilon=1e-5)
    bn.build((None,) * (rank - 1) + (channels,))
    bn.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
                    rng.normal(0, 0.3, channels), rng.uniform(0.5, 2.0, channels)])
    return bn


@pytest.mark.parametrize("kind", ["conv", "depthwise", "dense"])
def test_folded_conv_equals_the_layer_and_its_batch_norm(kind):
    rng = np.random.default_rng(0)
    if kind == "dense":
        x = rng.normal(size=(2, 5, 6)).astype(np.float32)
        layer = keras.layers.Dense(4, use_bias=True)
    elif kind == "depthwise":
        x = rng.normal(size=(1, 8, 8, 6)).astype(np.float32)
        layer = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)
    else:
        x = rng.normal(size=(1, 8, 8, 6)).astype(np.float32)
        layer = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
    layer.build(x.shape)
    channels = 6 if kind == "depthwise" else 4
    bn = _lively_bn(channels, rank=x.ndim)
    want = keras.activations.relu6(bn(layer(x), training=False))
    folded = FoldedConv(kind, filters=None if kind == "depthwise" else 4, kernel_size=3 if kind != "dense" else 1,
                        strides=2 if kind == "depthwise" else 1, use_bias=layer.use_bias, batch_norm=True,
                        epsilon=1e-5, activation="relu6")
    folded.build(x.shape)
    folded.set_weights([w.numpy() for w in layer.weights] + bn.get_weights())
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(want), atol=1e-5)


def test_quantized_weights_are_the_folded_kernel_rounded_per_output_channel():
    folded = FoldedConv("depthwise", kernel_size=3, use_bias=False, batch_norm=True, quantize_weights=True)
    folded.build((None, 8, 8, 4))
    folded.set_weights([np.random.default_rng(0).normal(size=(3, 3, 4, 1)).astype(np.float32),
                        *_lively_bn(4).get_weights()])
    kernel, _ = folded.folded_kernel_and_bias()
    rounded = np.asarray(folded.quantized_kernel(kernel))
    scale = np.abs(np.asarray(kernel)).max(axis=(0, 1, 3)) / 127.0
    steps = rounded[..., 0] / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_folded_conv_passes_the_shared_layer_checks(tmp_path):
    def make():
        layer = FoldedConv("conv", 8, 3, strides=2, batch_norm=True, activation="relu", quantize_weights=True)
        return layer
    check_layer(make, [(1, 16, 16, 4)], tmp_path)


def test_folded_conv_refuses_unknown_kinds_and_activations():
    with pytest.raises(ValueError, match="kind must be one of conv, depthwise, dense"):
        FoldedConv("pointwise", 4)
    with pytest.raises(ValueError, match="activation must be one of none, relu, relu6"):
        FoldedConv("conv", 4, activation="gelu")


def test_batch_norm_terms_are_the_inference_scale_and_offset():
    bn = _lively_bn(5, seed=3)
    terms = BatchNormTerms(5, epsilon=1e-5)
    terms.set_weights(bn.get_weights())
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    scale, offset = terms(x)
    np.testing.assert_allclose(x * np.asarray(scale) + np.asarray(offset), np.asarray(bn(x, training=False)), atol=1e-5)


def test_weight_tensor_holds_a_trainable_weight():
    layer = WeightTensor((2, 3))
    assert layer.trainable_weights == [layer.value]
    assert tuple(layer(np.zeros((1,), np.float32)).shape) == (2, 3)
    assert WeightTensor.from_config(layer.get_config()).value_shape == (2, 3)


def test_normalization_becomes_an_exact_frozen_depthwise_conv():
    mean, variance = [123.675, 116.28, 103.53], [58.395 ** 2, 57.12 ** 2, 57.375 ** 2]
    x = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    want = keras.layers.Normalization(mean=mean, variance=variance)(x)
    layer = normalization_as_depthwise(mean, variance, keras.backend.epsilon(), "normalize")
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(want), atol=1e-5)
    assert not layer.trainable_weights
