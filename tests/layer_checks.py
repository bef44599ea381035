"""The one check every mobileseg layer goes through (docs/architecture.md, section 5).

`check_layer` runs a layer inside a tiny functional model through:

1. a call on seeded random input, with finite outputs, of the shapes the symbolic call
   gave, and a training step whose gradients are finite and not all zero;
2. the keras-hub contract: every constructor argument stored in ``get_config``
   under its own name, and ``from_config`` rebuilding a layer with equal outputs;
   rebuilt under the ``mixed_float16`` and ``mixed_bfloat16`` policies, it computes in
   the policy's dtype (float outputs of that dtype, finite) and keeps float32 weights,
   as Keras' own ``run_layer_test`` checks;
3. ``.keras`` save and load with equal outputs;
4. TFLite fp32 conversion with builtin ops only, run in LiteRT, matching Keras;
5. TFLite int8 full-integer conversion (int8 input and output, every op builtin
   int8), run in LiteRT, close to the float output. The converter's own file: export's
   XNNPACK rewrite adds float islands on purpose, which would hide one the layer made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import keras
import numpy as np

from mobileseg.deploy import tflite_convert


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _wrap(layer: keras.layers.Layer, input_shapes: Sequence[Sequence[int]]) -> keras.Model:
    inputs = [keras.Input(tuple(shape[1:]), batch_size=shape[0]) for shape in input_shapes]
    outputs = layer(inputs if len(inputs) > 1 else inputs[0])
    return keras.Model(inputs, outputs)


def _predict(model: keras.Model, data: list[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(out) for out in _as_list(model(data if len(data) > 1 else data[0], training=False))]


def check_layer(make_layer: Callable[[], keras.layers.Layer], input_shapes: Sequence[Sequence[int]],
                tmp_path, *, int8: bool = True, fp32_atol: float = 1e-4,
                int8_max_relative_error: float = 0.25, seed: int = 0) -> dict:
    """Run one layer through call, config, .keras, fp32 and int8 TFLite checks.

    Args:
        make_layer: builds a fresh layer (called once; the rebuilt copy comes from its config).
        input_shapes: one full shape (batch 1 included) per layer input.
        tmp_path: a folder for the saved files (pytest's ``tmp_path``).
        int8: also convert to full-integer int8 and run it.
        fp32_atol: largest absolute difference allowed between Keras and fp32 TFLite,
            relative to the output's largest magnitude.
        int8_max_relative_error: largest mean absolute int8 error allowed, relative to
            the float output's standard deviation.
        seed: seeds the input data.

    Returns:
        ``{"fp32_ops": [...], "int8_ops": [...], "int8_relative_error": float}`` for
        tests that want to assert more.
    """
    rng = np.random.default_rng(seed)
    data = [rng.uniform(-1.0, 1.0, size=shape).astype(np.float32) for shape in input_shapes]
    layer = make_layer()
    model = _wrap(layer, input_shapes)
    expected = _predict(model, data)
    for out in expected:
        assert np.all(np.isfinite(out)), f"{type(layer).__name__} produced non-finite values"
    symbolic = [tuple(out.shape[1:]) for out in model.outputs]
    assert symbolic == [out.shape[1:] for out in expected], f"{type(layer).__name__}: symbolic {symbolic}"

    config = layer.get_config()
    arguments = [name for name, param in inspect.signature(type(layer).__init__).parameters.items()
                 if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)]
    missing = [name for name in arguments if name not in config]
    assert not missing, f"{type(layer).__name__}.get_config() lacks constructor arguments {missing}"
    clone = _wrap(type(layer).from_config(config), input_shapes)
    clone.set_weights(model.get_weights())
    for got, want in zip(_predict(clone, data), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    _check_training_step(clone, data, type(layer).__name__)  # on the copy: it moves batch-norm statistics
    for policy in MIXED_POLICIES:
        check_mixed_precision(type(layer).from_config({**config, "dtype": policy}), data)

    path = tmp_path / f"{layer.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(_predict(loaded, data), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    report = {}
    fp32 = tflite_convert.convert(model, "fp32")
    report["fp32_ops"] = tflite_convert.op_names(fp32)
    _assert_builtin(report["fp32_ops"], type(layer).__name__)
    for got, want in zip(tflite_convert.run(fp32, data), expected, strict=True):
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got.reshape(want.shape), want, atol=fp32_atol * scale, rtol=0)

    if int8:
        calibration = tflite_convert.random_representative(input_shapes, num_samples=8, seed=seed + 1)
        quantized = tflite_convert.convert(model, "int8", representative=calibration, xnnpack_rewrite=False)
        report["int8_ops"] = tflite_convert.op_names(quantized)
        _assert_builtin(report["int8_ops"], type(layer).__name__)
        _assert_int8_io(quantized)
        errors = []
        for got, want in zip(tflite_convert.run(quantized, data), expected, strict=True):
            spread = float(np.std(want)) or 1.0
            errors.append(float(np.mean(np.abs(got.reshape(want.shape) - want))) / spread)
        report["int8_relative_error"] = max(errors)
        assert report["int8_relative_error"] <= int8_max_relative_error, (
            f"{type(layer).__name__}: int8 mean error is {report['int8_relative_error']:.3f} of the "
            f"output's std (allowed {int8_max_relative_error})")
    return report


MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def check_mixed_precision(layer, data: list[np.ndarray]) -> None:
    """A layer made with a mixed policy computes in its compute dtype and keeps float32 weights."""
    name, policy = type(layer).__name__, layer.dtype_policy.name
    outputs = _as_list(layer(data if len(data) > 1 else data[0], training=True))
    for out in outputs:
        dtype = keras.backend.standardize_dtype(out.dtype)
        assert dtype == layer.compute_dtype, f"{name} under {policy}: output is {dtype}, not {layer.compute_dtype}"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))), (
            f"{name} under {policy}: non-finite output")
    wrong = [w.path for w in layer.weights if keras.backend.is_float_dtype(w.dtype) and w.dtype != "float32"]
    assert not wrong, f"{name} under {policy}: weights not float32: {wrong}"


def _check_training_step(model: keras.Model, data: list[np.ndarray], name: str) -> None:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_mean(tf.square(out)) for out in _as_list(model(data if len(data) > 1 else data[0],
                                                                             training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    if not model.trainable_variables:
        return
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads), f"{name}: a gradient is None or not finite"
    assert any(np.any(g.numpy() != 0) for g in grads), f"{name}: every gradient is zero"


def _assert_builtin(ops: list[str], name: str) -> None:
    foreign = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    assert not foreign, f"{name} converts to non-builtin ops {foreign}"


def _assert_int8_io(flatbuffer: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    for detail in interpreter.get_input_details() + interpreter.get_output_details():
        assert detail["dtype"] == np.int8, f"tensor {detail['name']} is {detail['dtype']}, not int8"


def randomized(layer, input_shapes, seed=0):
    """Build ``layer`` and give every weight random values (BN variances positive).

    Zero-initialized scales (SeaFormer's projection BNs, HyCTAS's gamma) would otherwise
    switch whole branches off, and the checks would not see them.
    """
    layer.build(input_shapes[0] if len(input_shapes) == 1 else list(input_shapes))
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        weight.assign(value.astype("float32"))
    return layer


def trainable_count(layer) -> int:
    return sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
