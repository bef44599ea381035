import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.quant.fake_quant import (
    SOFTMAX_RANGE,
    ActivationQuantizer,
    ConstantQuantizer,
    fake_quant,
    fake_quant_weights,
    int8_parameters,
    quantizers,
    symmetric_range,
)


def test_weights_are_rounded_per_output_channel_on_a_symmetric_narrow_grid():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 6)).astype(np.float32)
    kernel[..., 5] *= 100.0  # a channel with a far larger range must not coarsen the others
    rounded = np.asarray(fake_quant_weights(kernel))
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127.0
    steps = rounded / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.abs(steps).max() <= 127.0 + 1e-3
    np.testing.assert_allclose(np.abs(rounded).max(axis=(0, 1, 2)), np.abs(kernel).max(axis=(0, 1, 2)), rtol=1e-6)
    assert np.abs(rounded - kernel).max(axis=(0, 1, 2))[0] <= scale[0] / 2 + 1e-7


def test_weight_rounding_passes_gradients_straight_through():
    kernel = tf.Variable(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fake_quant_weights(kernel) * 3.0)
    np.testing.assert_allclose(tape.gradient(loss, kernel).numpy(), 3.0)


def test_int8_parameters_match_what_the_converter_writes():
    # the TFLite converter turns FakeQuantWithMinMaxVars(-1.3, 2.2) into these parameters
    inputs = keras.Input((4,), batch_size=1)
    quantizer = ActivationQuantizer(name="q")
    model = keras.Model(inputs, quantizer(inputs * 1.0))
    quantizer.range_min.assign(-1.3)
    quantizer.range_max.assign(2.2)
    quantizer.initialized.assign(1.0)
    scale, zero = int8_parameters(-1.3, 2.2)
    assert zero == round(1.3 / scale) - 128
    x = np.linspace(-2, 3, 4, dtype=np.float32)[None]
    rounded = np.asarray(model(x))
    np.testing.assert_allclose(rounded, np.clip(np.round(x / scale + zero), -128, 127) * scale - zero * scale,
                               atol=1e-6)


def test_activation_ranges_follow_a_moving_average_in_training():
    quantizer = ActivationQuantizer(decay=0.5)
    quantizer(np.array([-1.0, 1.0], np.float32), training=True)  # the first batch sets the range
    assert (float(quantizer.range_min), float(quantizer.range_max)) == (-1.0, 1.0)
    quantizer(np.array([-3.0, 5.0], np.float32), training=True)
    assert (float(quantizer.range_min), float(quantizer.range_max)) == (-2.0, 3.0)
    quantizer(np.array([0.0, 100.0], np.float32))  # inference does not move it
    assert float(quantizer.range_max) == 3.0


def test_the_range_always_holds_zero():
    quantizer = ActivationQuantizer()
    quantizer(np.array([2.0, 4.0], np.float32), training=True)
    assert float(quantizer.range_min) == 0.0
    assert float(np.asarray(quantizer(np.array([0.0], np.float32)))[0]) == 0.0


def test_calibration_passes_values_and_takes_the_global_range():
    quantizer = ActivationQuantizer()
    quantizer.observing = True
    x = np.array([0.123, -0.5], np.float32)
    np.testing.assert_array_equal(np.asarray(quantizer(x)), x)
    quantizer(np.array([3.0], np.float32))
    assert (float(quantizer.range_min), float(quantizer.range_max)) == (-0.5, 3.0)


def test_a_tied_call_quantizes_with_the_range_it_does_not_track():
    quantizer = ActivationQuantizer()
    quantizer(np.array([-1.0, 1.0], np.float32), training=True)
    quantizer(np.array([-9.0, 9.0], np.float32), training=True, track=False)
    assert (float(quantizer.range_min), float(quantizer.range_max)) == (-1.0, 1.0)
    scale, zero = int8_parameters(-1.0, 1.0)
    top = (127 - zero) * scale
    assert float(np.asarray(quantizer(np.array([5.0], np.float32), training=True, track=False))[0]) == \
        pytest.approx(top, abs=1e-6)


def test_fixed_ranges_never_move_and_match_tflite_softmax():
    quantizer = ActivationQuantizer(fixed_range=SOFTMAX_RANGE)
    quantizer(np.array([0.0, 40.0], np.float32), training=True)
    assert int8_parameters(*SOFTMAX_RANGE) == (1 / 256, -128)
    out = np.asarray(quantizer(np.array([0.5, 1.0], np.float32)))
    np.testing.assert_allclose(out, [0.5, 255 / 256])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="decay must be in"):
        ActivationQuantizer(decay=1.0)
    with pytest.raises(ValueError, match="fixed_range must hold 0"):
        ActivationQuantizer(fixed_range=(1.0, 2.0))
    with pytest.raises(ValueError, match="clip must hold 0"):
        ActivationQuantizer(clip=(1.0, 6.0))
    with pytest.raises(ValueError, match="a fixed range is neither symmetric nor clipped"):
        ActivationQuantizer(fixed_range=(-1.0, 1.0), symmetric=True)


def test_a_symmetric_quantizer_has_zero_point_0_wherever_the_values_lie():
    quantizer = ActivationQuantizer(symmetric=True)
    for values in ([-0.5, 2.0], [-3.0, 0.25], [0.1, 0.7]):
        quantizer.initialized.assign(0.0)
        quantizer(np.array(values, np.float32), training=True)
        magnitude = max(-min(values[0], 0.0), values[1])
        scale, zero = int8_parameters(float(quantizer.range_min), float(quantizer.range_max))
        assert zero == 0 and scale == pytest.approx(magnitude / 127, rel=1e-6)
    for magnitude in np.geomspace(1e-3, 1e3, 61):  # the zero point survives float32 rounding
        assert int8_parameters(*(float(v) for v in symmetric_range(-magnitude, magnitude)))[1] == 0


def test_a_clipped_quantizer_computes_relu6_on_the_int8_grid():
    quantizer = ActivationQuantizer(clip=(0.0, 6.0))
    quantizer(np.array([-3.0, 8.0], np.float32), training=True)
    assert (float(quantizer.range_min), float(quantizer.range_max)) == (0.0, 6.0)
    out = np.asarray(quantizer(np.array([-1.0, 3.0, 9.0], np.float32)))
    np.testing.assert_allclose(out, [0.0, 3.0, 6.0], atol=6.0 / 255)
    quantizer.observing = True  # calibration passes the float values on, clipped as the ReLU6 would
    np.testing.assert_array_equal(np.asarray(quantizer(np.array([-1.0, 7.5], np.float32))), [0.0, 6.0])


def test_constant_quantizer_uses_the_values_own_range():
    values = np.array([-0.2, 0.05, 0.7], np.float32)
    scale, zero = int8_parameters(-0.2, 0.7)
    want = (np.clip(np.round(values / scale) + zero, -128, 127) - zero) * scale
    np.testing.assert_allclose(np.asarray(ConstantQuantizer()(values)), want, atol=1e-6)


def test_fake_quant_layers_round_trip_through_config_and_keras_files(tmp_path):
    inputs = keras.Input((6,))
    tracked = ActivationQuantizer(decay=0.9, name="tracked")
    fixed = ActivationQuantizer(fixed_range=(-1.0, 1.0), name="fixed")
    symmetric = ActivationQuantizer(symmetric=True, name="symmetric")
    relu6 = ActivationQuantizer(clip=(0.0, 6.0), name="relu6")
    model = keras.Model(inputs, relu6(symmetric(ConstantQuantizer(name="constant")(fixed(tracked(inputs))))))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    model(x, training=True)
    path = tmp_path / "quantizers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    twin = loaded.get_layer("tracked")
    assert twin.get_config()["decay"] == 0.9 and float(twin.range_max) == float(tracked.range_max)
    assert loaded.get_layer("fixed").fixed_range == (-1.0, 1.0)
    assert loaded.get_layer("symmetric").symmetric and loaded.get_layer("relu6").clip == (0.0, 6.0)
    assert [q.name for q in quantizers(loaded)] == ["tracked", "fixed", "symmetric", "relu6"]


def test_fake_quant_of_a_tensor_is_the_tensorflow_op():
    graph = tf.function(lambda x: fake_quant(x, -1.0, 1.0)).get_concrete_function(
        tf.TensorSpec((2,), tf.float32)).graph
    assert "FakeQuantWithMinMaxVars" in {op.type for op in graph.get_operations()}
