"""Keras 3 model -> TFLite flatbuffer: the one conversion every step uses.

`TFLiteConverter.from_keras_model` is unreliable on Keras 3, so the model's inference
function alone is written as a SavedModel with a static batch-1 signature (no SHAPE/PACK
ops for a dynamic batch; `save_inference_graph`) and converted from there. Three modes:

- ``fp32``: float model, builtin ops only;
- ``fp16``: float16 weights (for the GPU delegate);
- ``int8``: full-integer post-training quantization with a representative set;
  integer input and output (int8, or a uint8 image in), and the converter refuses any
  op that has no int8 kernel; then the XNNPACK rewrite (`mobileseg.deploy.xnnpack_int8`).

The latency table's blocks, validation's networks, the zoo, the cost probe, tests and
benchmarks call `convert`, and so does `mobileseg.deploy.packaging.convert` for every file
export ships (the packaged model, a ``uint8`` image input named ``image``): one SavedModel
writer and one converter set-up, so a block is timed as converted for shipping
(tests/deploy/test_packaging.py checks the export's bytes against a direct call).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from mobileseg.console import native_log_path, native_output_to
from mobileseg.deploy.xnnpack_int8 import for_xnnpack

MODES = ("fp32", "fp16", "int8")
INPUT_TYPES = ("int8", "uint8")
"""The input types of an ``int8`` file: int8, or uint8 (the raw bytes of a camera image)."""


def random_representative(input_shapes: Sequence[Sequence[int]], num_samples: int = 8,
                          seed: int = 0, low: float = -1.0, high: float = 1.0
                          ) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A representative data generator of uniform noise for calibration.

    Args:
        input_shapes: one full shape (batch included) per model input.
        num_samples: calibration samples to yield.
        seed: seeds the generator, so two conversions calibrate alike.
        low, high: value range of the noise.

    Example:
        >>> gen = random_representative([(1, 4, 4, 3)], num_samples=2)
        >>> [sample[0].shape for sample in gen()]
        [(1, 4, 4, 3), (1, 4, 4, 3)]
    """
    def generate():
        rng = np.random.default_rng(seed)
        for _ in range(num_samples):
            yield [rng.uniform(low, high, size=shape).astype(np.float32) for shape in input_shapes]
    return generate


def convert(model, mode: str = "fp32",
            representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
            batch_size: int = 1, xnnpack_rewrite: bool = True, *,
            input_names: Sequence[str] | None = None, input_type: str = "int8",
            output_type: str | None = "int8") -> bytes:
    """Convert a Keras 3 model to a TFLite flatbuffer through a SavedModel.

    Args:
        model: a built `keras.Model` (functional or subclassed) with static input shapes.
        mode: ``fp32``, ``fp16`` or ``int8`` (full integer).
        representative: calibration generator for ``int8``; default: uniform noise
            in [-1, 1] shaped like the model inputs.
        batch_size: the static batch size of the exported signature.
        xnnpack_rewrite: rewrite an ``int8`` file for XNNPACK as export ships it
            (`mobileseg.deploy.xnnpack_int8.for_xnnpack`), so a block timed for the latency
            table runs the way it will in the shipped network; False: the converter's file.
        input_names: the signature's name of each input; default `input_name` of its index.
        input_type: ``int8`` or ``uint8``: the type of an ``int8`` file's inputs.
        output_type: ``int8``: an ``int8`` file's float outputs become int8; None: they keep
            the graph's type (a uint8 class map).

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: unknown mode or input type, or an input shape that is not static.

    Example:
        >>> import keras
        >>> inputs = keras.Input((8, 8, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
        >>> flatbuffer = convert(model, "int8")
        >>> flatbuffer[4:8]
        b'TFL3'
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; expected one of {', '.join(MODES)}")
    if input_type not in INPUT_TYPES:
        raise ValueError(f"unknown int8 input type {input_type!r}; expected one of {', '.join(INPUT_TYPES)}")
    names = list(input_names) if input_names is not None else [input_name(i) for i in range(len(model.inputs))]
    specs = []
    for tensor, name in zip(model.inputs, names, strict=True):
        shape = tuple(tensor.shape[1:])
        if any(dim is None for dim in shape):
            raise ValueError(f"model input {tensor.name!r} has a dynamic shape {shape}; "
                             "build the model with a fixed input size to convert it")
        specs.append(tf.TensorSpec((batch_size, *shape), tf.dtypes.as_dtype(tensor.dtype), name=name))
    with tempfile.TemporaryDirectory(prefix="mobileseg_savedmodel_") as saved, quiet_absl():
        save_inference_graph(model, specs, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if mode == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            samples = representative or random_representative([spec.shape for spec in specs])
            converter.representative_dataset = (
                (lambda: (dict(zip((spec.name for spec in specs), sample)) for sample in samples()))
                if len(specs) > 1 else samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.dtypes.as_dtype(input_type)
            if output_type is not None:
                converter.inference_output_type = tf.dtypes.as_dtype(output_type)
        with native_output_to(native_log_path()):  # the converter's per-model lines
            flatbuffer = converter.convert()
    return for_xnnpack(flatbuffer) if mode == "int8" and xnnpack_rewrite else flatbuffer


def save_inference_graph(model, specs: Sequence, directory: str) -> None:
    """Write ``model``'s inference function alone as a SavedModel (signature ``serving_default``).

    Like ``model.export(format="tf_saved_model")`` but traces one function and tracks only the
    variables, not every layer: several times quicker for the large graphs of quantization-aware
    models, and the converter reads the same thing. Several inputs are one list argument, as a
    functional model takes them; the outputs are ``output_0``, ``output_1``, ... in the model's order.
    """
    import tensorflow as tf

    module = tf.Module()
    module.tracked_variables = [variable.value for variable in model.variables]
    def serve(inputs):
        outputs = model(inputs, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {f"output_{index}": output for index, output in enumerate(outputs)}

    signature = [list(specs)] if len(specs) > 1 else list(specs)
    module.serve = tf.function(serve, input_signature=signature, autograph=False)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})


@contextlib.contextmanager
def quiet_absl():
    """Silence the SavedModel writer's and converter's INFO lines while converting."""
    from absl import logging

    level = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        logging.set_verbosity(level)


def input_name(index: int) -> str:
    """The signature name of model input ``index``; sorting by it restores the model's order."""
    return f"input_{index:03d}"


def op_names(flatbuffer: bytes) -> list[str]:
    """The operator names of a flatbuffer's main graph, in execution order, before delegation.

    Example:
        >>> import keras
        >>> inputs = keras.Input((8, 8, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
        >>> op_names(convert(model))
        ['CONV_2D']
    """
    from mobileseg.litert_interpreter import builtin_interpreter

    return [op["op_name"] for op in builtin_interpreter(flatbuffer)._get_ops_details()]


def run(flatbuffer: bytes, inputs: Sequence[np.ndarray], num_threads: int = 1) -> list[np.ndarray]:
    """Run a flatbuffer once in LiteRT on float inputs; int8 I/O is (de)quantized here.

    Args:
        flatbuffer: the model bytes.
        inputs: one float array per model input, batch included.
        num_threads: LiteRT threads.

    Returns:
        One float32 array per model output.

    Example:
        >>> import keras
        >>> inputs = keras.Input((8, 8, 3))
        >>> model = keras.Model(inputs, keras.layers.ReLU()(inputs))
        >>> x = np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 8, 8, 3)
        >>> bool(np.allclose(run(convert(model), [x])[0], np.maximum(x, 0)))
        True
    """
    from mobileseg.litert_interpreter import new_interpreter

    runner = new_interpreter(model_content=flatbuffer, num_threads=num_threads).get_signature_runner()
    details = runner.get_input_details()
    names = sorted(details)
    if len(names) != len(inputs):
        raise ValueError(f"the model takes {len(names)} inputs, got {len(inputs)}")
    outputs = runner(**{name: quantize(value, details[name]) for name, value in zip(names, inputs)})
    output_details = runner.get_output_details()
    return [dequantize(outputs[name], output_details[name]) for name in sorted(outputs, key=_output_index)]


def _output_index(name: str) -> int:
    """``output_12`` -> 12: signature outputs sort in the model's order."""
    return int(name.rsplit("_", 1)[1])


def quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    """Float array -> the dtype of a LiteRT tensor, with its scale and zero point."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(value, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    """A LiteRT tensor -> float32, undoing its scale and zero point when quantized."""
    if not np.issubdtype(value.dtype, np.integer):
        return value.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
