import keras
import numpy as np
import pytest

from mobileseg.deploy.onnx_export import OnnxSegmenter, onnx_parity, run_onnx, to_onnx
from mobileseg.inference import ModelError
from tests.quant.networks import images


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((16, 24, 3))
    x = keras.layers.Normalization(mean=[120.0] * 3, variance=[3600.0] * 3)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1, strides=4)(x))


@pytest.mark.parametrize("output", ["logits", "mask"])
def test_the_onnx_file_matches_keras(tmp_path, model, output):
    path = tmp_path / "model.onnx"
    packaged = to_onnx(model, path, output=output, input_dtype="uint8")
    parity = onnx_parity(path, packaged, [images(1, (16, 24), seed=s) for s in range(2)])
    if output == "mask":
        assert parity == {"mask_agreement": 1.0}
        assert run_onnx(path, np.zeros((1, 16, 24, 3), np.uint8)).dtype == np.uint8
    else:
        assert parity["max_abs_diff"] < 1e-4


def test_an_onnx_file_segments_through_the_shared_segmenter(tmp_path, model):
    path = tmp_path / "model.onnx"
    to_onnx(model, path, output="logits", input_dtype="float32")
    segmenter = OnnxSegmenter(path)
    assert (segmenter.backend, segmenter.input_size, segmenter.num_classes) == ("onnxruntime", (16, 24), 4)
    assert segmenter.predict(images(2, (40, 60))).shape == (2, 40, 60)
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="onnxruntime cannot load it"):
        OnnxSegmenter(tmp_path / "broken.onnx")
