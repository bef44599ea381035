import keras
import numpy as np
import pytest

from mobileseg.deploy import tflite_convert
from tests.layer_checks import check_layer


def test_unknown_mode_is_named():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="unknown TFLite mode 'int4'"):
        tflite_convert.convert(model, "int4")


def test_unknown_input_type_is_named():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="unknown int8 input type 'float32'"):
        tflite_convert.convert(model, "int8", input_type="float32")


def test_several_inputs_and_outputs_keep_the_models_order():
    small, large = keras.Input((4, 4, 2)), keras.Input((8, 8, 2))
    pooled = keras.layers.AveragePooling2D(2)(keras.layers.Conv2D(2, 1)(large))
    model = keras.Model([small, large], [keras.layers.Add()([small, pooled]), keras.layers.Conv2D(3, 1)(large)])
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(1, 4, 4, 2)).astype(np.float32), rng.normal(size=(1, 8, 8, 2)).astype(np.float32)]
    got = tflite_convert.run(tflite_convert.convert(model, "fp32"), x)
    assert [g.shape for g in got] == [(1, 4, 4, 2), (1, 8, 8, 3)]
    for g, want in zip(got, model(x), strict=True):
        np.testing.assert_allclose(g, np.asarray(want), atol=1e-5)


def test_dynamic_shape_is_refused():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.ReLU()(inputs))
    with pytest.raises(ValueError, match="dynamic shape"):
        tflite_convert.convert(model)


def test_int8_model_has_int8_weights_and_io():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    model = keras.Model(inputs, keras.layers.ReLU()(x))
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_convert.convert(model, "int8"))
    dtypes = {detail["name"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert any(dtype == np.int8 for dtype in dtypes.values())
    assert not any(dtype == np.float32 for dtype in dtypes.values()), dtypes


def test_fp16_keeps_float_io_and_matches():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
    got = tflite_convert.run(tflite_convert.convert(model, "fp16"), [x])[0]
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-2)


def test_check_layer_catches_a_config_that_forgets_an_argument(tmp_path):
    class Forgetful(keras.layers.Layer):
        def __init__(self, scale=2.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, x):
            return x * self.scale

        def get_config(self):
            config = super().get_config()
            config.pop("scale", None)
            return config

    with pytest.raises(AssertionError, match="lacks constructor arguments"):
        check_layer(lambda: Forgetful(3.0), [(1, 4, 4, 2)], tmp_path)
