"""The LiteRT interpreter helpers on tiny real models: the inputs they make."""

import numpy as np

from mobileseg.latency.testing import tiny_tflite
from mobileseg.litert_interpreter import random_inputs


def test_random_inputs_use_the_tensor_dtype():
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tiny_tflite("conv"))
    (data,) = random_inputs(interpreter, seed=3)
    assert data.dtype == np.int8 and data.shape == (1, 16, 16, 8)
    assert data.min() < -64 and data.max() > 64
    np.testing.assert_array_equal(data, random_inputs(interpreter, seed=3)[0])
