"""A 7x7 depthwise convolution flattens into row bands: the same values, ops XNNPACK runs with its depthwise
kernels (float and int8), and quantization-aware training that places a quantizer on every band."""

import keras
import numpy as np
import pytest

from mobileseg.blocks.conv import ConvBNAct
from mobileseg.deploy import tflite_convert
from mobileseg.litert_op_profile import profile_interleaved
from mobileseg.quant.flatten import flatten_model
from mobileseg.quant.wide_depthwise import row_bands
from tests.quant.networks import int8_file_gap, randomize_statistics


def depthwise_model(kernel: int, strides: int, activation: str, size=(13, 18), channels: int = 16,
                    dilation: int = 1) -> keras.Model:
    inputs = keras.Input((*size, channels), batch_size=1)
    x = ConvBNAct(channels, kernel_size=kernel, strides=strides, depthwise=True, activation=activation,
                  dilation_rate=dilation)(inputs)
    model = keras.Model(inputs, x)
    randomize_statistics(model)
    return model


def band_convs(flat: keras.Model) -> list:
    return [op for op in flat.operations if type(op).__name__ == "FoldedConv"]


@pytest.mark.parametrize(("kernel", "strides", "activation", "size", "dilation"), [
    (7, 1, "relu", (13, 18), 1), (7, 2, "hard_swish", (13, 18), 1), (7, 2, "relu6", (12, 17), 1),
    (9, 1, "none", (11, 11), 1), (7, 1, "relu", (16, 19), 2)])
def test_a_wide_depthwise_kernel_becomes_row_bands_with_equal_outputs(kernel, strides, activation, size, dilation):
    model = depthwise_model(kernel, strides, activation, size, dilation=dilation)
    flat = flatten_model(model, strict=True)
    convs = band_convs(flat)
    assert [conv.kernel_size for conv in convs] == [(stop - start, kernel) for start, stop in row_bands(kernel, kernel)]
    assert [conv.kernel_size[0] * conv.kernel_size[1] <= 25 for conv in convs] == [True] * len(convs)
    x = np.random.default_rng(1).normal(size=(1, *size, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-4)


def test_a_depthwise_kernel_within_xnnpack_kernels_stays_one_convolution():
    flat = flatten_model(depthwise_model(5, 1, "relu"), strict=True)
    assert [conv.kernel_size for conv in band_convs(flat)] == [(5, 5)]


def test_an_input_of_unknown_size_keeps_the_plain_kernel():
    """The bands' padding and slices need the size; a model of any size keeps its one 7x7 convolution."""
    inputs = keras.Input((None, None, 16), batch_size=1)
    model = keras.Model(inputs, ConvBNAct(16, kernel_size=7, depthwise=True)(inputs))
    assert [conv.kernel_size for conv in band_convs(flatten_model(model, strict=True))] == [(7, 7)]


def test_the_bands_convert_to_fast_depthwise_operators_in_one_partition():
    """XNNPACK's profile names the operators: depthwise, not the grouped IGEMM a 7x7 kernel falls back to
    (the same kernel converted without flattening)."""
    flat = flatten_model(depthwise_model(7, 1, "relu", size=(12, 15), channels=32), strict=True)
    inputs = keras.Input((12, 15, 32), batch_size=1)
    plain = keras.Model(inputs, keras.layers.ReLU()(keras.layers.DepthwiseConv2D(7, padding="same")(inputs)))
    for mode in ("fp32", "int8"):
        files = [tflite_convert.convert(model, mode) for model in (flat, plain)]
        assert tflite_convert.op_names(files[0]).count("DEPTHWISE_CONV_2D") == 3
        banded, whole = profile_interleaved(files, names=["banded", "plain"], rounds=1, round_runs=2)
        assert not any("IGEMM" in node.op for node in banded.nodes)
        assert any("IGEMM" in node.op for node in whole.nodes)  # what the bands avoid
        assert all(node.name.startswith("xnnpack") for node in banded.nodes)


WIDE_KERNEL_NET = """
name: wide_kernels
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, kernel: 3, stride: 2}
      - {op: mbconv, width: 16, kernel: 7, stride: 2, expansion: 2.0}
      - {op: mbconv, width: 16, kernel: 7, stride: 1, expansion: 4.0, se: true, act: hard_swish}
head: {op: light, inputs: [{branch: main}], width: 16}
"""


@pytest.mark.slow
def test_quantization_aware_training_of_the_bands_ships_what_it_trained():
    """QAT places a quantizer on every band and every sum; a few steps stay finite, and the int8 file is one
    partition, takes every range from the model, and computes what the quantization-aware model does."""
    from mobileseg.arch import builder, schema_io
    from mobileseg.data.synthetic import SyntheticSource
    from mobileseg.quant.finetune import quantization_aware_training
    from mobileseg.quant.ptq import representative_images

    size = (32, 32)
    source = SyntheticSource(12, size=size)
    keras.utils.set_random_seed(0)
    model = builder.build_model(schema_io.loads(WIDE_KERNEL_NET), source.num_classes, size)
    randomize_statistics(model)
    qat, history = quantization_aware_training(
        model, source, input_size=size, epochs=1, calibration=representative_images(source, size, 4), batch_size=2,
        steps_per_epoch=2, learning_rate=1e-3, verbose=0, eager=True)
    assert np.all(np.isfinite(history["loss"]))
    bands = [conv for conv in band_convs(qat) if conv.kind == "depthwise" and conv.kernel_size[1] == 7]
    assert [conv.kernel_size[0] for conv in bands] == [3, 3, 1, 3, 3, 1] and all(c.quantize_weights for c in bands)
    assert int8_file_gap(qat, source, size) < 0.1
