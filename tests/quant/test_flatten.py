import keras
import numpy as np
import pytest

from mobileseg.deploy import tflite_convert
from mobileseg.quant.flatten import FlattenError, flatten_model
from tests.quant.networks import all_ops_model, images

LEAF_LAYERS = {"InputLayer", "FoldedConv", "WeightTensor", "BatchNormalization", "BatchNorm", "Dropout",
               "SpatialDropout2D", "Identity"}


@pytest.fixture(scope="module")
def network():
    return all_ops_model()


def test_every_block_inlines_into_leaf_layers_and_ops_with_equal_outputs(network):
    flat = flatten_model(network, strict=True)
    layers = {type(op).__name__ for op in flat.operations if isinstance(op, keras.layers.Layer)}
    assert layers <= LEAF_LAYERS, layers - LEAF_LAYERS
    ops = {type(op).__name__ for op in flat.operations if not isinstance(op, keras.layers.Layer)}
    assert {"Matmul", "Softmax", "Add", "Multiply", "Mean", "HardSigmoid", "Concatenate", "Rsqrt"} <= ops
    x = images(2)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(network(x)), atol=1e-4)


def test_the_flat_model_saves_and_loads(network, tmp_path):
    flat = flatten_model(network, strict=True)
    flat.save(tmp_path / "flat.keras")
    loaded = keras.saving.load_model(tmp_path / "flat.keras")
    x = images(1, seed=3)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(flat(x)), atol=1e-6)


def test_weights_used_in_block_arithmetic_become_trainable_weight_tensors(network):
    flat = flatten_model(network, strict=True)
    names = [layer.name for layer in flat.layers if type(layer).__name__ == "WeightTensor"]
    assert "main_4_sea_attention.attn.pos_emb_rowq" in names  # SeaFormer's positional embedding
    assert "main_5_mhsa.gamma" in names                        # HyCTAS's residual gain
    assert all(flat.get_layer(name).trainable_weights for name in names)


def test_keras_layer_norm_becomes_int8_friendly_arithmetic():
    inputs = keras.Input((4, 4, 8), batch_size=1)
    model = keras.Model(inputs, keras.layers.LayerNormalization(epsilon=1e-6)(inputs))
    flat = flatten_model(model, strict=True)
    assert "LayerNorm" not in {type(op).__name__ for op in flat.operations}
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-5)
    # the converter's own file: no float island (NEG, DEQUANTIZE) of its making
    raw = tflite_convert.convert(flat, "int8", xnnpack_rewrite=False)
    assert {"NEG", "DEQUANTIZE"}.isdisjoint(tflite_convert.op_names(raw))


def test_image_normalization_and_batch_norm_fold_into_convolutions():
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Normalization(mean=[100.0, 110.0, 120.0], variance=[900.0, 1600.0, 2500.0])(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="relu6")(x))
    flat = flatten_model(model, strict=True)
    assert [type(op).__name__ for op in flat.operations] == ["InputLayer", "Reshape", "FoldedConv", "Reshape",
                                                             "FoldedConv", "FoldedConv"]
    convs = [op for op in flat.operations if type(op).__name__ == "FoldedConv"]
    assert convs[0].kind == "depthwise" and convs[1].activation == "relu" and convs[2].activation == "relu6"
    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-4)


@pytest.mark.parametrize(("width", "channels"), [(480, 48), (12, 12), (7, 3)])
def test_image_normalization_takes_pixels_in_groups_that_fill_simd_registers(width, channels):
    """A 3-channel depthwise conv wastes most of each vector: the normalization runs over 16 pixels at once."""
    inputs = keras.Input((2, width, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Normalization(mean=[100.0, 110.0, 120.0],
                                                           variance=[900.0, 1600.0, 2500.0])(inputs))
    flat = flatten_model(model, strict=True)
    conv = next(op for op in flat.operations if type(op).__name__ == "FoldedConv")
    assert conv.kernel.shape[2] == channels
    x = np.random.default_rng(0).uniform(0, 255, (1, 2, width, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-4)


@keras.saving.register_keras_serializable(package="tests")
class _RawTensorFlow(keras.layers.Layer):
    """A layer whose call needs concrete tensors (tf.* rather than keras.ops), so it cannot be inlined."""

    def call(self, x):
        import tensorflow as tf

        return tf.math.cumsum(x, axis=-1)


def test_a_layer_that_cannot_be_inlined_is_kept_whole_or_refused_when_strict():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _RawTensorFlow(name="raw")(inputs) + 1.0)
    flat = flatten_model(model)
    assert "raw" in [layer.name for layer in flat.layers]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)))
    with pytest.raises(FlattenError, match=r"raw \(_RawTensorFlow\) cannot be inlined"):
        flatten_model(model, strict=True)


class _BatchFromShape(keras.layers.Layer):
    """Reshapes with the batch read from ``ops.shape`` (as keras-hub's attention layers do)."""

    def call(self, x):
        batch, height, width, channels = keras.ops.shape(x)
        tokens = keras.ops.reshape(x, (batch, -1, channels))
        return keras.ops.reshape(tokens * 2.0, (batch, height, width, channels))


def test_a_reshape_to_the_symbolic_batch_inlines_with_the_batch_inferred():
    inputs = keras.Input((4, 6, 3))
    model = keras.Model(inputs, keras.layers.Reshape((8, 9))(_BatchFromShape()(inputs)))
    original = keras.ops.reshape
    flat = flatten_model(model, strict=True)
    assert keras.ops.reshape is original  # the inlining-time patch is undone
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), rtol=1e-6)
    assert [tuple(op.newshape) for op in flat.operations if type(op).__name__ == "Reshape"] == [
        (-1, 24, 3), (-1, 4, 6, 3), (-1, 8, 9)]
    assert flat.output.shape == (None, 8, 9)
