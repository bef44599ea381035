import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from mobileseg.arch import builder, schema_io
from mobileseg.deploy import packaging, report, tflite_convert
from mobileseg.inference import read_sidecar
from mobileseg.litert_measure import measure_tflite
from mobileseg.quant.ptq import representative_dataset
from mobileseg.quant.qat import quantize_model
from mobileseg.quant.qat_calibration import calibrate
from tests.quant.networks import images, randomize_statistics

TINY = schema_io.loads("""
name: tiny
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2, se: true},
                                       {op: mbconv, width: 16, stride: 2}]}
head: {op: light, inputs: [{branch: main}], width: 16, aux: [{branch: main, cell: 0}]}
""")


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    model = builder.build_model(TINY, 5, (32, 48))
    randomize_statistics(model)
    return model


@pytest.fixture(scope="module")
def tiny_qat(tiny):
    qat = quantize_model(packaging.logits_model(tiny))
    calibrate(qat, [images(8, (32, 48))])
    return qat


def _run(flatbuffer, image):
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    detail = runner.get_input_details()["image"]
    out_detail = next(iter(runner.get_output_details().values()))
    output = next(iter(runner(image=image.astype(detail["dtype"])).values()))
    scale, zero = out_detail["quantization"]
    return (output.astype(np.float32) - zero) * scale if scale else output


def test_logits_model_keeps_the_main_output_only():
    model = builder.build_model(TINY, 5, (32, 48), auxiliary=True)
    assert len(model.outputs) == 2 and packaging.logits_model(model).output.shape == (None, 4, 6, 5)


@pytest.mark.parametrize("source, target", [(4, 32), (45, 360), (60, 480), (5, 37), (8, 3)])
def test_nearest_indices_follow_tensorflow(source, target):
    positions = np.arange(source, dtype=np.float32).reshape(1, source, 1, 1)
    want = tf.image.resize(positions, (target, 1), method="nearest").numpy().reshape(-1)
    np.testing.assert_array_equal(packaging.nearest_indices(source, target), want)


def test_class_map_is_argmax_at_low_resolution_then_nearest_upsampling():
    logits = np.random.default_rng(0).normal(size=(1, 5, 7, 4)).astype(np.float32)
    ids = np.argmax(logits, axis=-1)[..., None]
    want = tf.image.resize(ids, (37, 50), method="nearest").numpy()[..., 0]
    got = np.asarray(packaging.ClassMap(37, 50)(logits))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


def test_int8_mask_file_is_uint8_to_uint8_builtin_and_matches_the_qat_model(tiny_qat):
    flatbuffer = packaging.convert(tiny_qat, "int8", "mask", "uint8", mask_upsample=1)  # argmax at the logits
    ops = report.tflite_ops(flatbuffer)
    assert report.non_builtin(ops) == [] and {"ARG_MAX", "GATHER", "CAST"} <= set(ops)
    assert "RESIZE_BILINEAR" not in ops[ops.index("ARG_MAX"):]  # nothing resized after the argmax but ids
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    detail = runner.get_input_details()["image"]
    assert detail["dtype"] == np.uint8 and detail["quantization"] == (1.0, 0)
    x = np.round(images(3, (32, 48), seed=5))
    want = np.asarray(packaging.package(tiny_qat, "int8", "mask", mask_upsample=1)(x))
    got = np.concatenate([_run(flatbuffer, image[None]) for image in x])
    assert got.dtype == np.uint8 and got.shape == (3, 32, 48)
    assert (got == want).mean() > 0.97
    record = measure_tflite(flatbuffer, max_runs=20)
    assert record.xnnpack_partitions == 1 and record.fallback_ops == ["ARG_MAX", "GATHER", "GATHER", "CAST"]
    interpreter = Interpreter(model_content=flatbuffer)
    shapes = {d["index"]: tuple(d["shape"]) for d in interpreter.get_tensor_details()}
    gathers = [shapes[op["outputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "GATHER"]
    assert gathers == [(1, 4, 48), (1, 32, 48)]  # columns of the 4 source rows first, then whole rows


def test_class_map_can_upsample_the_logits_bilinearly_before_the_argmax():
    logits = np.random.default_rng(1).normal(size=(1, 5, 7, 4)).astype(np.float32)
    for factor, size in ((2, (10, 14)), (8, (37, 50))):  # 8x is capped at the output size
        ids = np.argmax(tf.image.resize(logits, size, method="bilinear").numpy(), axis=-1)[..., None]
        want = tf.image.resize(ids, (37, 50), method="nearest").numpy()[..., 0]
        np.testing.assert_array_equal(np.asarray(packaging.ClassMap(37, 50, factor)(logits)), want)
    assert not np.array_equal(np.asarray(packaging.ClassMap(37, 50, 2)(logits)),
                              np.asarray(packaging.ClassMap(37, 50)(logits)))
    with pytest.raises(ValueError, match="upsample must be a factor >= 1, got 0"):
        packaging.ClassMap(37, 50, 0)


def test_int8_mask_file_upsampling_its_logits_resizes_them_in_xnnpack_and_matches_the_qat_model(tiny_qat):
    assert packaging.MASK_UPSAMPLE == 2  # the default mask head upsamples (its docstring has the measurements)
    flatbuffer = packaging.convert(tiny_qat, "int8", "mask", "uint8")
    ops = report.tflite_ops(flatbuffer)
    assert ops.index("RESIZE_BILINEAR") < ops.index("ARG_MAX")
    assert "RESIZE_BILINEAR" not in report.tflite_ops(packaging.convert(tiny_qat, "int8", "mask", mask_upsample=1))
    x = np.round(images(3, (32, 48), seed=5))
    want = np.asarray(packaging.package(tiny_qat, "int8", "mask", mask_upsample=2)(x))
    got = np.concatenate([_run(flatbuffer, image[None]) for image in x])
    assert (got == want).mean() > 0.97
    record = measure_tflite(flatbuffer, max_runs=20)
    assert record.xnnpack_partitions == 1 and record.fallback_ops == ["ARG_MAX", "GATHER", "GATHER", "CAST"]


def test_int8_logits_file_matches_the_qat_model(tiny_qat):
    flatbuffer = packaging.convert(tiny_qat, "int8", "logits", "int8")
    x = np.round(images(2, (32, 48), seed=6))
    want = np.asarray(tiny_qat(x))
    got = np.concatenate([_run(flatbuffer, image[None] - 128.0) for image in x])
    assert np.abs(got - want).mean() / want.std() < 0.05


def test_fp32_file_takes_uint8_pixels_and_matches_keras(tiny):
    flatbuffer = packaging.convert(tiny, "fp32", "logits", "uint8")
    x = np.round(images(1, (32, 48), seed=7))
    np.testing.assert_allclose(_run(flatbuffer, x), np.asarray(packaging.logits_model(tiny)(x)), atol=1e-3)
    record = measure_tflite(flatbuffer, max_runs=20)
    assert record.xnnpack_partitions == 1 and record.fallback_ops == ["CAST"]


@pytest.fixture(scope="module")
def calibration():
    return representative_dataset([images(1, (32, 48), seed=3)])


@pytest.fixture(scope="module")
def shipped(tiny, calibration):
    return packaging.convert(tiny, "int8", "logits", "uint8", calibration)


def test_export_ships_the_bytes_of_the_latency_tables_converter(tiny, calibration, shipped):
    # the latency table converts with tflite_convert.convert; export adds its packaging and these options only
    packaged = packaging.package(tiny, "int8", "logits", "uint8")
    direct = tflite_convert.convert(packaged, "int8", calibration, input_names=("image",), input_type="uint8",
                                    output_type="int8", xnnpack_rewrite=True)
    assert direct == shipped


@pytest.mark.parametrize("option", [{"input_type": "int8"}, {"xnnpack_rewrite": False}])
def test_a_different_converter_option_gives_other_bytes(tiny, calibration, shipped, option):
    packaged = packaging.package(tiny, "int8", "logits", "uint8")
    options = {"input_names": ("image",), "input_type": "uint8", "output_type": "int8", **option}
    assert tflite_convert.convert(packaged, "int8", calibration, **options) != shipped


def test_a_uniform_bias_is_nudged_so_the_converter_keeps_per_channel_scales():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.activations.hard_sigmoid(keras.layers.Conv2D(4, 1)(inputs)))  # zero bias
    qat = quantize_model(model)
    x = images(4, (8, 8))
    calibrate(qat, [x])
    flatbuffer = packaging.convert(qat, "int8", "logits", "uint8", representative_dataset([x[:1]]))
    np.testing.assert_allclose(_run(flatbuffer, np.round(x[:1])), np.asarray(qat(np.round(x[:1]))), atol=2 / 255)


def test_freezing_keeps_the_inference_function(tiny_qat):
    x = images(2, (32, 48), seed=8)
    np.testing.assert_allclose(np.asarray(packaging.freeze(tiny_qat)(x)), np.asarray(tiny_qat(x)), atol=1e-5)


def test_bad_combinations_are_refused(tiny, tiny_qat):
    with pytest.raises(ValueError, match="post-training int8 quantization needs a representative set"):
        packaging.convert(tiny, "int8")
    with pytest.raises(ValueError, match="is quantization-aware; export the float model for fp16"):
        packaging.package(tiny_qat, "fp16")
    with pytest.raises(ValueError, match="an int8 file takes uint8 or int8 pixels"):
        packaging.package(tiny, "int8", input_dtype="float32")
    with pytest.raises(ValueError, match="unknown output 'probabilities'"):
        packaging.package(tiny, "fp32", output="probabilities")


def test_sidecar_is_what_inference_reads(tmp_path, tiny):
    path = tmp_path / "model_int8.tflite"
    info = packaging.sidecar(labels=["a", "b", "c", "d", "e"], colors=np.eye(5, 3, dtype=np.uint8) * 255,
                             input_size=(32, 48), input_dtype="uint8", mode="int8", output="logits",
                             normalization=packaging.normalization_of(tiny), method="qat",
                             output_quantization=(0.05, -3), source="model.keras")
    packaging.write_sidecar(path, info)
    names, colors = read_sidecar(path)[-2:]  # (the sidecar's path,) names, colours
    assert names == ("a", "b", "c", "d", "e") and colors.shape == (5, 3)
    data = json.loads(path.with_suffix(".json").read_text())
    assert data["normalization"]["mean"] == [123.675, 116.28, 103.53] and data["normalization"]["folded"]
    assert data["output"] == {"mode": "logits", "dtype": "int8", "quantization": {"scale": 0.05, "zero_point": -3}}
    assert data["input"]["size"] == [32, 48] and data["quantization"] == {"mode": "int8", "method": "qat"}
