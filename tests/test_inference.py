"""mobileseg.inference: one Segmenter for .keras and .tflite; resizing, quantized I/O, class maps, sidecars."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.arch import builder
from mobileseg.deploy import tflite_convert
from mobileseg.inference import KerasSegmenter, LiteRTSegmenter, ModelError, Segmenter, default_palette
from tests import tiny_segmenters

NUM_CLASSES = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny network with random weights as .keras, fp32 .tflite, int8 .tflite and a uint8 class map."""
    keras.utils.set_random_seed(1)
    model = builder.build_model(tiny_segmenters.GENOTYPE, NUM_CLASSES, tiny_segmenters.INPUT_SIZE)
    paths = tiny_segmenters.save_models(model, tmp_path_factory.mktemp("inference"))
    class_map = tiny_segmenters.class_map_model(model)
    paths["uint8_classes"] = paths["keras"].with_name("classes_uint8.tflite")
    paths["uint8_classes"].write_bytes(tiny_segmenters.convert_typed(
        class_map, tf.uint8, representative=tiny_segmenters.representative_images()))
    return paths


def images(count=2, size=(48, 64), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *size, 3)).astype(np.float32)


def test_load_picks_the_backend_and_reads_the_shapes(models):
    keras_segmenter = Segmenter.load(models["keras"])
    fp32, int8 = Segmenter.load(models["fp32"], num_threads=1), Segmenter.load(models["int8"])
    assert isinstance(keras_segmenter, KerasSegmenter) and isinstance(fp32, LiteRTSegmenter)
    for segmenter in (keras_segmenter, fp32, int8):
        assert segmenter.input_size == (32, 48)
        assert (segmenter.output_kind, segmenter.num_classes) == ("logits", NUM_CLASSES)
        assert segmenter.class_names == tuple(f"class_{i}" for i in range(NUM_CLASSES))
        assert segmenter.colors.tolist() == default_palette(NUM_CLASSES).tolist()
    assert int8.input_detail["dtype"] == np.int8 and int8.output_detail["dtype"] == np.int8
    assert fp32.num_threads == 1


def test_fp32_tflite_gives_the_keras_logits_and_classes(models):
    batch = images()
    keras_segmenter, fp32 = Segmenter.load(models["keras"]), Segmenter.load(models["fp32"])
    expected = keras_segmenter.predict_logits(batch)
    assert expected.shape == (2, 8, 12, NUM_CLASSES)  # 1/4 of the 32x48 input, whatever the image size
    np.testing.assert_allclose(fp32.predict_logits(batch), expected, atol=1e-4)
    keras_ids, fp32_ids = keras_segmenter.predict(batch), fp32.predict(batch)
    assert keras_ids.shape == (2, 48, 64) and keras_ids.dtype == np.int32
    assert np.mean(keras_ids == fp32_ids) > 0.999


def test_predict_is_the_argmax_of_the_logits_resized_to_full_resolution(models):
    batch = images(1, size=(40, 50))
    segmenter = Segmenter.load(models["fp32"])
    logits = tf.image.resize(segmenter.predict_logits(batch), (40, 50), method="bilinear").numpy()
    np.testing.assert_array_equal(segmenter.predict(batch), logits.argmax(-1))
    resized = tf.image.resize(batch, (32, 48), method="bilinear").numpy()  # what the model sees
    np.testing.assert_allclose(segmenter.predict_logits(batch), tflite_convert.run(
        models["fp32"].read_bytes(), [resized])[0], atol=1e-5)


def test_int8_input_is_quantized_with_its_scale_and_output_dequantized(models):
    batch = images(1)
    int8, fp32 = Segmenter.load(models["int8"]), Segmenter.load(models["fp32"])
    scale, zero_point = int8.output_detail["quantization"]
    logits = int8.predict_logits(batch)
    assert logits.dtype == np.float32
    # dequantized: (q - zero_point) * scale, so on the output's grid, and near the float model's logits
    np.testing.assert_allclose(logits / scale, np.round(logits / scale), atol=1e-3)
    assert np.abs(logits - fp32.predict_logits(batch)).mean() < 4 * scale
    assert np.mean(int8.predict(batch) == fp32.predict(batch)) > 0.9


def test_a_batch_gives_what_its_images_give_one_by_one(models):
    batch = images(3)
    for key in ("keras", "int8"):
        segmenter = Segmenter.load(models[key])
        one_by_one = np.concatenate([segmenter.predict(batch[i:i + 1]) for i in range(3)])
        np.testing.assert_array_equal(segmenter.predict(batch), one_by_one)


def test_uint8_input_class_map_output_is_resized_nearest(models):
    segmenter = Segmenter.load(models["uint8_classes"])
    assert segmenter.input_detail["dtype"] == np.uint8
    assert (segmenter.output_kind, segmenter.num_classes, len(segmenter.colors)) == ("classes", None, 256)
    at_input = images(1, size=(32, 48))
    ids = segmenter.predict(at_input)
    assert ids.shape == (1, 32, 48) and ids.dtype == np.int32 and ids.max() < NUM_CLASSES
    # at twice the input size every id is repeated 2x2 (nearest), never blended
    doubled = np.repeat(np.repeat(at_input, 2, axis=1), 2, axis=2)
    big = tf.image.resize(doubled, (32, 48), method="bilinear").numpy()
    np.testing.assert_array_equal(big, at_input)
    np.testing.assert_array_equal(segmenter.predict(doubled), np.repeat(np.repeat(ids, 2, axis=1), 2, axis=2))
    with pytest.raises(ModelError, match="outputs a class map, not logits"):
        segmenter.predict_logits(at_input)


def test_uint8_class_map_agrees_with_the_float_model(models):
    batch = images(2, size=(32, 48))
    fp32 = Segmenter.load(models["fp32"])
    classes = Segmenter.load(models["uint8_classes"])
    assert np.mean(fp32.predict(batch) == classes.predict(batch)) > 0.9


def test_keras_class_map_model_and_dynamic_input(tmp_path):
    inputs = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(4, 1, strides=2, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant([0, 0, 0, 1.0]))(inputs)
    keras.Model(inputs, tiny_segmenters.ArgmaxIds()(logits)).save(tmp_path / "ids.keras")
    segmenter = Segmenter.load(tmp_path / "ids.keras")
    assert (segmenter.input_size, segmenter.output_kind) == (None, "classes")
    ids = segmenter.predict(images(1, size=(10, 14)))
    assert ids.shape == (1, 10, 14) and set(np.unique(ids)) == {3}


def test_sidecar_names_and_colours(tmp_path):
    model = tiny_segmenters.constant_model(3, winner=1)
    model.save(tmp_path / "m.keras")
    sidecar = {"labels": ["road", "car", "sky"], "colors": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    segmenter = Segmenter.load(tmp_path / "m.keras")
    assert segmenter.class_names == ("road", "car", "sky")
    assert segmenter.colors.tolist() == sidecar["colors"]
    (tmp_path / "m.json").write_text(json.dumps({"labels": ["road", "car"]}))
    with pytest.raises(ModelError, match=r"m.json: 2 labels but the model outputs 3 classes"):
        Segmenter.load(tmp_path / "m.keras")
    (tmp_path / "m.json").unlink()
    (tmp_path / "m.keras.json").write_text(json.dumps({"labels": ["a", "b", "c"]}))
    segmenter = Segmenter.load(tmp_path / "m.keras")
    assert segmenter.class_names == ("a", "b", "c") and segmenter.colors.tolist() == default_palette(3).tolist()
    (tmp_path / "m.keras.json").write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(ModelError, match=r"m.keras.json: 1 labels but the model outputs 3 classes"):
        Segmenter.load(tmp_path / "m.keras")
    (tmp_path / "m.keras.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"m.keras.json: cannot read the labels sidecar"):
        Segmenter.load(tmp_path / "m.keras")


def test_clear_errors_for_bad_model_files(tmp_path):
    with pytest.raises(ModelError, match="no such model file: .*missing.tflite"):
        Segmenter.load(tmp_path / "missing.tflite")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(ModelError, match=r"model.onnx: unsupported model type '.onnx'; expected a .keras or .tflite"):
        Segmenter.load(tmp_path / "model.onnx")
    (tmp_path / "fake.tflite").write_bytes(b"PK\x03\x04 a zip, not a flatbuffer")
    with pytest.raises(ModelError, match="fake.tflite is not a TFLite model"):
        Segmenter.load(tmp_path / "fake.tflite")
    (tmp_path / "fake.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="fake.keras: cannot load the Keras model"):
        Segmenter.load(tmp_path / "fake.keras")
    tiny_segmenters.constant_model(2, winner=0).save(tmp_path / "c.keras")
    with pytest.raises(ValueError, match=r"expected RGB images \[B, H, W, 3\], got shape \(8, 8, 3\)"):
        Segmenter.load(tmp_path / "c.keras").predict(np.zeros((8, 8, 3)))
