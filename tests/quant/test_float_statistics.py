"""The layer-norm variance path stays float in QAT and in the int8 file (issue 15: QAT diverged on layer norms)."""

import keras
import numpy as np
import tensorflow as tf

from mobileseg.blocks.layer_norm import LayerNorm
from mobileseg.deploy import packaging, report, tflite_convert
from mobileseg.litert_interpreter import delegate_report
from mobileseg.quant.fake_quant import quantizers
from mobileseg.quant.qat import quantize_model
from mobileseg.quant.qat_calibration import calibrate
from mobileseg.training.losses import OhemCrossEntropy


def _layer_norm_model():
    """conv -> LayerNorm -> conv over 8x8 tokens of 16 channels."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 16), batch_size=None)
    x = LayerNorm(epsilon=1e-5)(keras.layers.Conv2D(16, 1)(inputs))
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))


def _spread_tokens(count, seed=0):
    """Tokens whose variances span about 1 .. 1600, as a trained SegFormer's residual stream (flat road
    and sky beside textured objects): half the rows nearly constant, half of large amplitude."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (count, 8, 8, 16)).astype(np.float32)
    amplitude = np.where(np.arange(8) < 4, 1.0, 40.0).astype(np.float32)[None, :, None, None]
    return x * amplitude


def test_quantization_aware_steps_on_tokens_of_widely_spread_variance_stay_finite():
    """On the old placement the variance's int8 range was [0, ~1600]: small variances rounded to 0, the
    RSQRT gave inf and the first training step made the RSQRT's range and then every weight NaN."""
    qat = quantize_model(_layer_norm_model(), input_range=None)
    x = _spread_tokens(4)
    calibrate(qat, [x])
    y = np.random.default_rng(1).integers(0, 4, (4, 8, 8)).astype(np.int32)
    optimizer, loss = keras.optimizers.Adam(1e-3), OhemCrossEntropy(threshold=None)
    for _ in range(3):
        with tf.GradientTape() as tape:
            value = loss(y, qat(x, training=True))
        optimizer.apply(tape.gradient(value, qat.trainable_variables), qat.trainable_variables)
        assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(w.numpy())) for w in qat.weights)
    kinds = [type(q.input._keras_history.operation).__name__ for q in quantizers(qat)]
    assert "Rsqrt" not in kinds and kinds.count("Mean") == 1  # the centring mean only, not the variance


def test_the_int8_file_computes_the_variance_path_in_float_as_the_quantization_aware_model_does():
    model = _layer_norm_model()
    qat = quantize_model(model, input_range=None)
    x = _spread_tokens(4)
    calibrate(qat, [x])
    flatbuffer = packaging.convert(qat, "int8", input_dtype="int8")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    assert delegate_report(interpreter) == (1, [])
    assert report.qat_coverage(qat, flatbuffer)["calibrated_tensors"] == []
    test = _spread_tokens(2, seed=5)
    want = np.asarray(qat(test))
    got = np.concatenate([tflite_convert.run(flatbuffer, [t[None]])[0] for t in test])
    small = np.s_[:, :4]  # the nearly constant tokens, which the int8 variance zeroed
    assert np.abs(got - want)[small].mean() / want[small].std() < 0.05
    assert np.abs(got - want).mean() / want.std() < 0.05
    names = tflite_convert.op_names(flatbuffer)
    at = names.index("LOG")  # the RSQRT as EXP(-LOG/2), the same bits on aarch64 (mobileseg.deploy.xnnpack_int8)
    assert names[at - 8:at + 5] == ["DEQUANTIZE", "MUL", "ROUND", "MUL", "MEAN", "MUL", "DEQUANTIZE", "ADD", "LOG",
                                    "MUL", "EXP", "MUL", "QUANTIZE"]
