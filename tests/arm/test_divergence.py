"""mobileseg.arm.divergence: the operators whose kernels compute differently on emulated aarch64 and here,
and issue 19's cause, a layer norm's float statistics, at a tiny shape (the ARM runs skip, naming the reason,
without the arm64 root: ``make arm_root``)."""

import keras
import numpy as np
from keras import ops

from mobileseg.arm import divergence
from mobileseg.deploy import tflite_convert
from mobileseg.litert_interpreter import builtin_interpreter
from tests.arm.models import arm_root

SIZE = (16, 24)


def _image(seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (*SIZE, 3)).astype(np.float32)


def _layer_norm_file():
    """An int8 file (the export's XNNPACK rewrite included) of a 1x1 conv to 96 channels and a layer norm."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((*SIZE, 3), batch_size=1)
    x = keras.layers.Conv2D(96, 1)(inputs)
    centered = x - ops.mean(x, axis=-1, keepdims=True)
    normalised = centered * ops.rsqrt(ops.mean(centered * centered, axis=-1, keepdims=True) + 1e-5)
    images = tflite_convert.random_representative([(1, *SIZE, 3)], num_samples=4, low=0.0, high=255.0)
    return tflite_convert.convert(keras.Model(inputs, normalised), "int8", representative=images)


def test_every_operator_output_becomes_a_graph_output_after_the_original_ones():
    flatbuffer = _layer_norm_file()
    exposed = builtin_interpreter(divergence.every_tensor_out(flatbuffer))
    original = builtin_interpreter(flatbuffer)
    outputs = [detail["index"] for detail in exposed.get_output_details()]
    produced = [index for op in exposed._get_ops_details() for index in op["outputs"]]
    assert outputs[:1] == [detail["index"] for detail in original.get_output_details()]
    assert sorted(outputs) == sorted(set(produced))


def test_xnnpacks_float_softmax_differs_on_aarch64():
    """The float kernel that stays ISA-dependent (README, Android section): a one-op float file."""
    root = arm_root()
    inputs = keras.Input((*SIZE, 3), batch_size=1)
    logits = keras.layers.Conv2D(64, 1, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.05, seed=0))(inputs)
    flatbuffer = tflite_convert.convert(keras.Model(inputs, ops.softmax(logits, axis=-1)), "fp32")
    found = divergence.divergent_ops(root, flatbuffer, _image())
    assert [row["op"] for row in found] == ["SOFTMAX"], found
    assert 0 < found[0]["max_difference"] < 1e-6  # ulps, from the order of the sum


def test_a_layer_norms_statistics_give_the_same_bits_on_aarch64():
    """Issue 19: XNNPACK's float MEAN (summation order) and RSQRT (an approximation) differ by an ulp on
    aarch64, and a normalised value on an int8 rounding boundary rounded the other way. Before
    `mobileseg.deploy.xnnpack_int8._exact_statistics` this found the MEAN (the RSQRT after it then had
    differing inputs already)."""
    root = arm_root()
    flatbuffer = _layer_norm_file()
    names = tflite_convert.op_names(flatbuffer)
    assert {"ROUND", "LOG", "EXP"} <= set(names) and "RSQRT" not in names
    assert divergence.divergent_ops(root, flatbuffer, _image()) == []
