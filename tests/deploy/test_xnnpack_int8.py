"""The XNNPACK rewrites of int8 flatbuffers, each on a one-op model converted by the real converter."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from keras import ops

from mobileseg.deploy import tflite_convert, xnnpack_int8
from mobileseg.litert_interpreter import delegate_report

SHAPE = (1, 4, 6, 8)


def _delegation(flatbuffer):
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    return delegate_report(interpreter)


def _details(flatbuffer):
    interpreter = Interpreter(model_content=flatbuffer)
    return interpreter._get_ops_details(), {d["index"]: d for d in interpreter.get_tensor_details()}


def _int8(model, low=-3.0, high=3.0, shapes=(SHAPE,)):
    lows, highs = np.broadcast_to(low, len(shapes)), np.broadcast_to(high, len(shapes))

    def samples():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.uniform(lo, hi, shape).astype(np.float32) for shape, lo, hi in zip(shapes, lows, highs)]
    return tflite_convert.convert(model, "int8", representative=samples, xnnpack_rewrite=False)


def _one_op(fn):
    inputs = keras.Input(SHAPE[1:], batch_size=1)
    return keras.Model(inputs, fn(inputs))


def _fake_quant(x, low, high):
    return keras.layers.Lambda(lambda t: tf.quantization.fake_quant_with_min_max_args(t, min=low, max=high))(x)


FLOAT_ONLY = {
    "SOFTMAX": lambda x: ops.softmax(x, axis=-1),
    "HARD_SWISH": ops.hard_silu,
    "GELU": lambda x: ops.gelu(x, approximate=False),
    # a standalone RELU6 (after a BATCH_MATMUL, say) is refused even with the same
    # quantization on its input and output
    "RELU6": lambda x: _fake_quant(ops.relu6(_fake_quant(ops.matmul(x, ops.transpose(x, (0, 1, 3, 2))), 0, 6)), 0, 6),
}


@pytest.mark.parametrize("name", sorted(FLOAT_ONLY))
def test_an_int8_op_xnnpack_runs_in_float_only_becomes_a_delegated_float_island(name):
    flatbuffer = _int8(_one_op(FLOAT_ONLY[name]))
    assert name in _delegation(flatbuffer)[1]  # the fact the rewrite is for (ai-edge-litert 2.3)
    if name == "RELU6":
        relu6 = next(op for op in _details(flatbuffer)[0] if op["op_name"] == name)
        tensors = _details(flatbuffer)[1]
        assert tensors[relu6["inputs"][0]]["quantization"] == tensors[relu6["outputs"][0]]["quantization"]
    rewritten = xnnpack_int8.float_islands(flatbuffer)
    ops_after = tflite_convert.op_names(rewritten)
    at = ops_after.index(name)
    assert ops_after[at - 1:at + 2] == ["DEQUANTIZE", name, "QUANTIZE"]
    assert _delegation(rewritten) == (1, [])
    x = np.random.default_rng(1).uniform(-3, 3, SHAPE).astype(np.float32)
    before, after = tflite_convert.run(flatbuffer, [x])[0], tflite_convert.run(rewritten, [x])[0]
    scale = Interpreter(model_content=rewritten).get_output_details()[0]["quantization"][0]
    assert np.abs(after - before).max() <= 2 * scale + 1e-6  # TFLite's int8 kernel is within 2 steps of float


def _centered(x):
    return x - ops.mean(x, axis=-1, keepdims=True)


def test_an_add_of_a_tiny_constant_xnnpack_refuses_becomes_a_float_island():
    # a variance + epsilon: the epsilon's scale is ~1e-6 of the sum's
    def variance_plus_epsilon(x):
        return ops.mean(_centered(x) * _centered(x), axis=-1, keepdims=True) + 1e-5
    flatbuffer = _int8(_one_op(variance_plus_epsilon))
    assert "ADD" in _delegation(flatbuffer)[1]  # the fact the rewrite is for (ai-edge-litert 2.3)
    rewritten = xnnpack_int8.for_xnnpack(flatbuffer)
    at = tflite_convert.op_names(rewritten).index("ADD")
    assert tflite_convert.op_names(rewritten)[at - 1:at + 2] == ["DEQUANTIZE", "ADD", "QUANTIZE"]
    assert _delegation(rewritten) == (1, [])
    x = np.random.default_rng(1).uniform(-3, 3, SHAPE).astype(np.float32)
    before, after = tflite_convert.run(flatbuffer, [x])[0], tflite_convert.run(rewritten, [x])[0]
    scale = Interpreter(model_content=rewritten).get_output_details()[0]["quantization"][0]
    assert np.abs(after - before).max() <= 2 * scale + 1e-6


def test_a_layer_norms_statistics_run_in_float_as_one_island_inside_the_partition():
    """Square, mean, + epsilon, RSQRT and the product: one float island (the int8 variance zeroed small ones)."""
    def layer_norm(x):
        centered = _centered(x)
        return centered * ops.rsqrt(ops.mean(centered * centered, axis=-1, keepdims=True) + 1e-5)
    flatbuffer = _int8(_one_op(layer_norm), low=-40.0, high=40.0)
    rewritten = xnnpack_int8.for_xnnpack(flatbuffer)
    names = tflite_convert.op_names(rewritten)
    # the square of the centred x in int8 steps (exact integers), its mean times scale^2, RSQRT as EXP(-LOG/2):
    # the same bits on every CPU (tests/arm/test_divergence.py)
    assert names == ["MEAN", "SUB", "DEQUANTIZE", "MUL", "ROUND", "MUL", "MEAN", "MUL", "DEQUANTIZE", "ADD", "LOG",
                     "MUL", "EXP", "MUL", "QUANTIZE"]
    assert _delegation(rewritten) == (1, [])
    operators, tensors = _details(rewritten)
    to_steps, square, _, _, product = (op for op in operators if op["op_name"] == "MUL")
    assert to_steps["inputs"][0] == product["inputs"][0]  # one DEQUANTIZE of the centred x
    integers = next(op for op in operators if op["op_name"] == "ROUND")["outputs"][0]
    assert square["inputs"][0] == square["inputs"][1] == integers
    x = np.random.default_rng(4).normal(0, 1, SHAPE).astype(np.float32)
    x[:, :2] *= 40.0  # tokens of variance ~1600 beside tokens of variance ~1, as in a trained SegFormer
    want = np.asarray(layer_norm(x))
    error = {name: np.abs(tflite_convert.run(f, [x])[0] - want)[:, 2:].mean()
             for name, f in (("int8 variance", flatbuffer), ("float statistics", rewritten))}
    assert error["float statistics"] < 0.25 < error["int8 variance"], error


def test_a_batch_matmul_is_delegated_once_its_second_operand_has_zero_point_0():
    a, b = keras.Input((4, 8, 16), batch_size=1), keras.Input((4, 16, 8), batch_size=1)
    model = keras.Model([a, b], ops.matmul(a, b))
    flatbuffer = _int8(model, low=(-2.0, -1.0), high=(2.0, 3.0), shapes=((1, 4, 8, 16), (1, 4, 16, 8)))
    assert _delegation(flatbuffer)[1] == ["BATCH_MATMUL"]
    rewritten = xnnpack_int8.symmetric_matmul_operands(flatbuffer)
    assert tflite_convert.op_names(rewritten) == ["QUANTIZE", "BATCH_MATMUL"]
    assert _delegation(rewritten) == (1, [])
    operators, tensors = _details(rewritten)
    matmul = next(op for op in operators if op["op_name"] == "BATCH_MATMUL")
    assert tensors[matmul["inputs"][1]]["quantization"][1] == 0
    rng = np.random.default_rng(2)
    x = [rng.uniform(-2, 2, (1, 4, 8, 16)).astype(np.float32), rng.uniform(-1, 3, (1, 4, 16, 8)).astype(np.float32)]
    before, after = tflite_convert.run(flatbuffer, x)[0], tflite_convert.run(rewritten, x)[0]
    assert np.abs(after - before).mean() / np.abs(before).mean() < 0.02
    assert xnnpack_int8.symmetric_matmul_operands(rewritten) == rewritten  # nothing left to requantize


def test_the_uint8_image_is_dequantized_inside_the_delegate_exactly():
    inputs = keras.Input((8, 8, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    flatbuffer = _uint8_image_file(model)
    assert _delegation(flatbuffer)[1] == ["QUANTIZE"]  # uint8 -> int8 is not an XNNPACK requantization
    rewritten = xnnpack_int8.dequantize_uint8_inputs(flatbuffer)
    assert tflite_convert.op_names(rewritten)[:2] == ["DEQUANTIZE", "QUANTIZE"]
    assert _delegation(rewritten) == (1, [])
    x = np.random.default_rng(3).integers(0, 256, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(tflite_convert.run(rewritten, [x])[0], tflite_convert.run(flatbuffer, [x])[0])


def _uint8_image_file(model):
    """An int8 file with a uint8 input, as `mobileseg.deploy.packaging` writes for camera pixels."""
    import tempfile

    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.random.default_rng(i).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)] for i in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        return converter.convert()


def test_float_files_and_delegated_int8_files_come_back_unchanged():
    model = _one_op(lambda x: keras.layers.Conv2D(4, 1)(x))
    float_file, int8_file = tflite_convert.convert(model, "fp32"), _int8(model)
    assert xnnpack_int8.for_xnnpack(float_file) == float_file
    assert xnnpack_int8.for_xnnpack(int8_file) == int8_file
