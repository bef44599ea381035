import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from mobileseg.blocks.conv import ConvBNAct
from mobileseg.deploy import packaging, report, tflite_convert
from mobileseg.quant import ptq
from mobileseg.quant.fake_quant import SOFTMAX_RANGE, ActivationQuantizer, ConstantQuantizer, quantizers
from mobileseg.training.losses import OhemCrossEntropy
from mobileseg.quant.qat import quantize_model
from mobileseg.quant.qat_calibration import calibrate, is_qat_model, uncalibrated
from tests.quant.networks import all_ops_model, images, randomize_statistics


def _nodes(model):
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]


def _producer(tensor):
    return type(tensor._keras_history.operation).__name__


def _quantizer_named_after(model, prefix):
    """The one quantizer named after an op whose auto-name starts with prefix (Keras numbers names globally)."""
    found = [q for q in quantizers(model) if q.name.split(".")[0].rstrip("_0123456789") == prefix]
    assert len(found) == 1, [q.name for q in quantizers(model)]
    return found[0]


def test_relu_fuses_into_the_convolution_and_its_output_is_quantized_once():
    inputs = keras.Input((8, 8, 3))
    qat = quantize_model(keras.Model(inputs, ConvBNAct(4, activation="relu6")(inputs)))
    assert [type(layer).__name__ for layer in qat.layers] == ["InputLayer", "ActivationQuantizer", "FoldedConv",
                                                              "ActivationQuantizer"]
    assert qat.layers[2].activation == "relu6" and qat.layers[2].quantize_weights
    assert qat.layers[1].fixed_range == (0.0, 255.0)  # the uint8 image


def test_hard_sigmoid_is_quantized_after_its_relu6_and_after_its_scaling():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1)(inputs)
    qat = quantize_model(keras.Model(inputs, keras.activations.hard_sigmoid(x)), input_range=None)
    kinds = [type(op).__name__ for op in qat.operations]
    assert kinds == ["InputLayer", "ActivationQuantizer", "FoldedConv", "Add", "Relu6", "ActivationQuantizer",
                     "Multiply", "ActivationQuantizer"]


def test_softmax_output_has_tflite_fixed_range_and_its_input_a_tracked_one():
    inputs = keras.Input((4, 6))
    qat = quantize_model(keras.Model(inputs, ops.softmax(ops.matmul(inputs, ops.transpose(inputs, (0, 2, 1))))),
                         input_range=None)
    last = qat.layers[-1]
    assert isinstance(last, ActivationQuantizer) and last.fixed_range == SOFTMAX_RANGE
    assert _producer(_quantizer_named_after(qat, "softmax").input) == "Softmax"
    assert _producer(_quantizer_named_after(qat, "matmul").input) == "Matmul"


def _attention_model(activation=ops.relu6):
    """Single-head attention over a 4x6 map: q, k, v 1x1 convs, softmax, then an activation and a conv."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6, 3), batch_size=1)
    q, k, v = (keras.layers.Conv2D(8, 1)(inputs / 255.0) for _ in range(3))
    tokens = lambda t: ops.reshape(t, (-1, 24, 8))  # noqa: E731
    attention = ops.softmax(ops.matmul(tokens(q), ops.transpose(tokens(k), (0, 2, 1))) * 8 ** -0.5)
    out = ops.reshape(ops.matmul(attention, tokens(v)), (-1, 4, 6, 8))
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(activation(out)))


def _calibrated(model):
    qat = quantize_model(model)
    calibrate(qat, [images(4, (4, 6))])
    return qat


def test_attention_matmuls_convert_to_int8_batch_matmuls_that_xnnpack_delegates():
    """XNNPACK takes an int8 BATCH_MATMUL only when its second input has zero point 0: QAT makes it so."""
    from ai_edge_litert.interpreter import Interpreter

    from mobileseg.litert_interpreter import delegate_report

    qat = _calibrated(_attention_model())
    assert sum(q.symmetric for q in quantizers(qat)) == 2  # the keys' and the values' ranges
    flatbuffer = packaging.convert(qat, "int8")
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    matmuls = [op for op in interpreter._get_ops_details() if op["op_name"] == "BATCH_MATMUL"]
    assert len(matmuls) == 2
    for op in matmuls:
        second = tensors[op["inputs"][1]]
        assert second["dtype"] == np.int8 and second["quantization"][1] == 0
        assert not second["name"].endswith("/symmetric")  # QAT's range, not a requantization added after
    assert report.qat_coverage(qat, flatbuffer)["calibrated_tensors"] == []
    assert delegate_report(interpreter) == (1, [])


def test_a_relu6_after_an_attention_output_is_its_clipped_quantizer_not_an_op():
    """XNNPACK runs no int8 RELU6; after a matmul (no fused activation) the quantizer clamps instead."""
    model = _attention_model()
    qat = _calibrated(model)
    assert "Relu6" not in {type(op).__name__ for op in qat.operations}
    clipped = [q for q in quantizers(qat) if q.clip is not None]
    assert len(clipped) == 1 and clipped[0].clip == (0.0, 6.0)
    assert _producer(clipped[0].input) == "Matmul"  # through the reshape, which keeps the values
    x = images(2, (4, 6), seed=3)
    want = np.asarray(model(x))
    assert np.abs(np.asarray(qat(x)) - want).mean() / want.std() < 0.2  # mostly the int8 softmax's 1/256 steps
    assert "RELU6" not in tflite_convert.op_names(packaging.convert(qat, "int8"))
    plain_relu = _calibrated(_attention_model(ops.relu))
    assert [q.clip for q in quantizers(plain_relu) if q.clip] == [(0.0, float("inf"))]


def test_concatenation_inputs_and_output_share_one_quantizer():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 1)(inputs)
    b = keras.layers.Conv2D(4, 1)(inputs)
    model = keras.Model(inputs, [ops.concatenate([a, b], axis=-1), ops.mean(a, axis=(1, 2))])
    qat = quantize_model(model, input_range=None)
    shared = _quantizer_named_after(qat, "concatenate")
    calls = [node for node in _nodes(qat) if node.operation is shared]
    assert len(calls) == 3  # a, b (not tracking) and the concatenation (tracking)
    assert sorted(node.arguments.kwargs.get("track", True) for node in calls) == [False, False, True]


def test_a_concatenation_of_one_scale_keeps_it_and_converts():
    """Issue 15: an adaptive max pool of a 2x2 map to 12x12 concatenates maxima of slices of one map
    (a tree of concatenations, `concatenate_tree`). It keeps the map's scale, without a range of its own: the
    converter merges the equal slices and refused them feeding concatenations of other ranges."""
    from mobileseg.blocks.gfa_attention import adaptive_max_pool

    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 2, 3), batch_size=1)
    model = keras.Model(inputs, adaptive_max_pool(keras.layers.Conv2D(4, 1)(inputs / 255.0), 12))
    qat = quantize_model(model)
    assert not [q.name for q in quantizers(qat) if q.name.startswith("concatenate")]
    x = np.random.default_rng(0).uniform(0, 255, (4, 2, 2, 3)).astype(np.float32)
    calibrate(qat, [x])
    flatbuffer = packaging.convert(qat, "int8")
    assert report.qat_coverage(qat, flatbuffer)["calibrated_tensors"] == []
    got = np.concatenate([tflite_convert.run(flatbuffer, [x[i:i + 1]])[0] for i in range(4)])
    np.testing.assert_allclose(got, np.asarray(qat(x)), atol=1e-6)


def test_a_layer_called_at_several_nodes_stays_one_layer():
    inputs = keras.Input((8, 8, 3))
    resize = keras.layers.Resizing(4, 4, name="shared_resize")
    a = resize(keras.layers.Conv2D(4, 1)(inputs))
    b = resize(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    model = keras.Model(inputs, ops.concatenate([a, b], axis=-1))
    qat = quantize_model(model, input_range=None)  # two copies would share one name: Keras refuses
    assert [layer.name for layer in qat.layers].count("shared_resize") == 1
    x = images(2, size=(8, 8))
    calibrate(qat, [x])
    assert np.asarray(qat(x)).shape == (2, 4, 4, 8)


def test_batch_norm_after_a_bare_conv_folds_and_a_standalone_one_becomes_mul_add():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.BatchNormalization()(inputs)           # pre-activation: no conv before it
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(x))  # right after a conv: folded
    randomize_statistics(model)
    qat = quantize_model(model, input_range=None)
    kinds = [type(op).__name__ for op in qat.operations]
    assert "BatchNormalization" not in kinds and kinds.count("BatchNormTerms") == 1
    assert [layer.batch_norm for layer in qat.layers if type(layer).__name__ == "FoldedConv"] == [True]
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    calibrate(qat, [x])
    np.testing.assert_allclose(np.asarray(qat(x)), np.asarray(model(x)), atol=0.1)


def test_ranges_are_empty_until_calibrated():
    inputs = keras.Input((8, 8, 3))
    qat = quantize_model(keras.Model(inputs, ConvBNAct(4)(inputs)))
    assert is_qat_model(qat) and len(uncalibrated(qat)) == 1 and uncalibrated(qat)[0].endswith(".quant")
    calibrate(qat, [images(2, (8, 8))])
    assert uncalibrated(qat) == []


SMALL = """
name: small
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2, act: hard_swish}
      - {op: mbconv, width: 16, stride: 2, se: true}
      - {op: mbconv, width: 16, stride: 2}
      - {op: sea_attention, heads: 2, key_dim: 4}
head: {op: light, inputs: [{branch: main}], width: 16}
"""


def test_a_quantization_aware_model_saves_and_loads_as_keras(tmp_path):
    from mobileseg.arch import builder, schema_io

    model = builder.build_model(schema_io.loads(SMALL), 5, (32, 32))
    randomize_statistics(model)
    qat = quantize_model(model, strict=True)
    x = images(4)
    calibrate(qat, [x])
    qat.compile(optimizer=keras.optimizers.SGD(1e-3), loss=OhemCrossEntropy(threshold=None), run_eagerly=True)
    qat.fit(x, np.zeros((4, 32, 32), np.int32), epochs=1, batch_size=4, verbose=0)
    qat.save(tmp_path / "model_qat.keras")
    loaded = keras.saving.load_model(tmp_path / "model_qat.keras", compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(qat(x)))
    ranges = {q.name: float(q.range_max) for q in quantizers(qat)}
    assert {q.name: float(q.range_max) for q in quantizers(loaded)} == ranges


@pytest.mark.slow
def test_every_block_converts_with_all_its_int8_ranges_from_qat():
    model = all_ops_model()
    qat = quantize_model(model, strict=True)
    x = images(8)
    calibrate(qat, [x[:4], x[4:]])
    flatbuffer = packaging.convert(qat, "int8", representative=ptq.representative_dataset([x[:1]]))
    coverage = report.qat_coverage(qat, flatbuffer)
    assert coverage["calibrated_tensors"] == [] and coverage["unused_quantizers"] == []
    assert report.non_builtin(tflite_convert.op_names(flatbuffer)) == []
    want = np.asarray(qat(x[:2]))
    got = np.concatenate([tflite_convert.run(flatbuffer, [x[i:i + 1]])[0] for i in range(2)])
    assert np.abs(got - want).mean() / want.std() < 0.08


def _train_float(model, x, y, steps):
    optimizer = keras.optimizers.Adam(2e-3)
    loss = OhemCrossEntropy(threshold=None)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)


@pytest.mark.slow
@pytest.mark.parametrize("arch, size", [("mobilenetv3_small_lraspp", (32, 32)), ("seaformer_tiny", (64, 64))])
def test_reference_networks_train_quantization_aware_and_convert_to_what_they_compute(arch, size):
    from mobileseg.arch import builder, schema_io
    from mobileseg.data.synthetic import SyntheticSource
    from mobileseg.deploy.profiles import PROFILE_DIR

    source = SyntheticSource(20, size=size)
    genotype = schema_io.load(PROFILE_DIR.parent / "search_space" / "references" / f"{arch}.yaml")
    keras.utils.set_random_seed(0)
    model = builder.build_model(genotype, source.num_classes, size)
    train_x, train_y = (np.concatenate(part) for part in zip(*[
        (image, mask) for image, mask in packaging_pairs(source, "train", size)]))
    _train_float(model, train_x[:8], train_y[:8], steps=4)

    qat = quantize_model(model, strict=True)
    graph = tf.function(lambda image: qat(image, training=False)).get_concrete_function(
        tf.TensorSpec((1, *size, 3), tf.float32)).graph
    fake_quants = [op for op in graph.get_operations() if op.type.startswith("FakeQuantWithMinMax")]
    quantizer_calls = [node for node in _nodes(qat) if isinstance(node.operation, (ActivationQuantizer,
                                                                                 ConstantQuantizer))]
    assert len(fake_quants) == len(quantizer_calls)
    assert len(fake_quants) > 40

    calibration = ptq.representative_images(source, size, 8)
    calibrate(qat, [np.concatenate(calibration)])
    before = {q.name: (float(q.range_min), float(q.range_max)) for q in quantizers(qat)}
    _train_float(qat, train_x[:8], train_y[:8], steps=2)  # quantization-aware steps
    moved = [q.name for q in quantizers(qat) if (float(q.range_min), float(q.range_max)) != before[q.name]]
    assert len(moved) > len(before) // 2

    representative = ptq.representative_dataset(calibration)
    qat_file = packaging.convert(qat, "int8", representative=representative)
    ptq_file = packaging.convert(model, "int8", representative=representative)
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=qat_file).get_tensor_details()
    # full integer (weights int8, biases int32, activations int8, uint8 input) but for the
    # float islands of ops XNNPACK runs in float only (mobileseg.deploy.xnnpack_int8)
    assert all(d["name"].endswith(("/dequantized", "/float")) for d in details if d["dtype"] == np.float32)
    assert report.qat_coverage(qat, qat_file)["calibrated_tensors"] == []

    x = np.concatenate(ptq.representative_images(source, size, 3, split="val"))
    keras_qat, keras_float = np.asarray(qat(x)), np.asarray(model(x))
    lite_qat = np.concatenate([tflite_convert.run(qat_file, [image[None]])[0] for image in x])
    lite_ptq = np.concatenate([tflite_convert.run(ptq_file, [image[None]])[0] for image in x])
    qat_gap = np.abs(lite_qat - keras_qat).mean() / keras_qat.std()
    ptq_gap = np.abs(lite_ptq - keras_float).mean() / keras_float.std()
    assert qat_gap < ptq_gap, (qat_gap, ptq_gap)
    assert qat_gap < 0.1


def packaging_pairs(source, split, size):
    """(image [1, H, W, 3] float32, mask [1, H, W] int32) of a split, resized to ``size``."""
    from mobileseg.data.pipeline import eval_dataset

    return list(eval_dataset(source, split, size=size).as_numpy_iterator())
