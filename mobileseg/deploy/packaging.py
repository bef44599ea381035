"""What ships: a trained model packaged for a phone and converted to TFLite.

The packaged model (`package`) takes one image, RGB, ``[1, H, W, 3]`` with pixel
values 0..255, the normalisation folded inside (the image normalisation becomes a 1x1
depthwise convolution, `mobileseg.quant.flatten`), and returns either

- ``logits``: ``[1, h, w, classes]`` at the network's output stride (int8 in an int8
  file, with its scale and zero point), or
- ``mask``: a ``[1, H, W]`` uint8 class map at the input size: the logits resized
  bilinearly by ``mask_upsample`` (`MASK_UPSAMPLE`, 2, by default: RESIZE_BILINEAR, inside
  XNNPACK), the argmax taken there, then nearest upsampling to the input size by two
  GATHERs (`ClassMap`). Argmax before the last upsampling is the cheap order: after it,
  the per-pixel work at full size is copying one byte, where upsampling logits to full
  size first moves ``classes`` values per pixel and can cost more than the network.
  With ``mask_upsample`` 1 the argmax is at the logits' resolution (1/8); its price in
  accuracy, measured on CamVid (against bilinear upsampling of the logits to the labels,
  then argmax): 0.45 mIoU point for SeaFormer-T (test, fp32); for MobileNetV3-Small
  trained 120 epochs 1.0 point on val and 0.8 on test, in int8 and fp32 alike
  (`benchmarks/results/mask_head_camvid.json`). ARG_MAX, GATHER and CAST run outside
  XNNPACK, after its single partition.

Input types: an int8 file takes ``uint8`` pixels (scale 1, zero point 0: the raw camera
bytes) or ``int8`` (pixel - 128); a float file takes ``uint8`` (a CAST inside) or
``float32`` pixels in [0, 255].

`convert` converts the packaged model with `mobileseg.deploy.tflite_convert.convert`, the
converter the latency table, validation and the zoo use, with the input/output types above.
For ``int8`` a quantization-aware model (`mobileseg.quant.qat`) brings its own ranges; a
float model is quantized post-training from the representative set (its input range pinned
to [0, 255]).
An int8 file is then rewritten for XNNPACK (`mobileseg.deploy.xnnpack_int8.for_xnnpack`:
float islands for the ops it runs in float only, zero-point-0 matmul operands, the
uint8 image dequantized inside the delegate), so that it runs as one partition.
Before conversion every model is *frozen* (`freeze`): folded, rounded kernels become
constants, which makes the SavedModel small and quick to convert, and a bias whose
channels are all equal is nudged by less than a part in a million so it is not a
"splat" constant: the converter quantizes a splat bias of a per-channel convolution
with the first channel's scale for every channel (TF 2.21; seen when a zero-initialised
squeeze-excite bias gets the ``+ 3`` of a hard sigmoid folded into it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

from mobileseg.deploy import tflite_convert
from mobileseg.quant.fake_quant import IMAGE_RANGE, ActivationQuantizer
from mobileseg.quant.flatten import flatten_model, logits_model
from mobileseg.quant.folded import FoldedConv
from mobileseg.quant.qat_calibration import is_qat_model

MODES = tflite_convert.MODES
OUTPUTS = ("logits", "mask")
INPUT_DTYPES = ("uint8", "int8", "float32")
SPLAT_NUDGE = 1e-6


def freeze(model: keras.Model) -> keras.Model:
    """The same inference function with every `FoldedConv` as a plain conv of constant, final weights.

    Batch norms are folded and quantization-aware kernels rounded once, here, instead of
    in the graph; uniform biases are nudged out of being splat constants (module
    docstring). Other layers are shared with ``model``.
    """
    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t._keras_history.operation.name)
              for t in model.inputs]
    frozen = {}

    def rewrite(operation):
        if isinstance(operation, FoldedConv):
            if id(operation) not in frozen:
                frozen[id(operation)] = _frozen_conv(operation)
            return frozen[id(operation)]
        if isinstance(operation, ActivationQuantizer) and operation.fixed_range is None:
            if id(operation) not in frozen:
                low, high = (float(v.numpy()) for v in (operation.range_min, operation.range_max))
                frozen[id(operation)] = ActivationQuantizer(fixed_range=(low, high), name=operation.name)
            return _FixedCall(frozen[id(operation)])
        return operation

    outputs = model._run_through_graph(inputs if len(inputs) > 1 else inputs[0], operation_fn=rewrite)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)


class _FixedCall:
    """Calls a fixed-range quantizer wherever the tracked one was called (``track`` and ``training`` ignored)."""

    def __init__(self, quantizer):
        self.quantizer = quantizer

    def __call__(self, x, *args, **kwargs):
        return self.quantizer(x)


def _frozen_conv(conv: FoldedConv) -> FoldedConv:
    kernel, bias = conv.folded_kernel_and_bias()
    if conv.quantize_weights:
        kernel = conv.quantized_kernel(kernel)
    kernel, bias = keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias).astype(np.float32)
    if bias.size > 1 and np.all(bias == bias[0]):
        bias = bias + SPLAT_NUDGE * max(1.0, abs(float(bias[0]))) * np.arange(bias.size) / bias.size
    config = conv.get_config()
    config.update(use_bias=True, batch_norm=False, quantize_weights=False)
    twin = FoldedConv.from_config(config)
    channels = kernel.shape[0] if conv.kind == "dense" else kernel.shape[2]
    twin.build((None, channels) if conv.kind == "dense" else (None, None, None, channels))
    twin.set_weights([kernel, bias])
    return twin


@keras.saving.register_keras_serializable(package="mobileseg")
class ClassMap(keras.layers.Layer):
    """Logits -> uint8 class ids at ``(height, width)``: argmax first, then nearest upsampling.

    With ``upsample`` k > 1 the logits are first resized bilinearly (half-pixel centres, as
    `mobileseg.inference.Segmenter` resizes logits) to k times their size, capped at ``(height,
    width)``; the argmax is taken there (RESIZE_BILINEAR runs in XNNPACK, ARG_MAX at k^2 times the
    pixels outside it).

    TFLite: ARG_MAX, CAST, two GATHERs (columns, then rows), all builtin. Columns first:
    TFLite's GATHER copies one inner block per index, so gathering the 480 columns of
    the 45 source rows and then whole output rows copies 45 x 480 single bytes and 360
    rows, where rows first would copy 360 x 480 single bytes (measured at 360x480 from
    45x60: 0.09 ms against 0.46 ms). TFLite's
    RESIZE_NEAREST_NEIGHBOR takes no integer tensors, so the nearest source row and
    column of every output pixel are constants (`nearest_indices`) following
    ``tf.image.resize``'s ``"nearest"`` rule (half-pixel centres), which is also how
    `mobileseg.inference.Segmenter` resizes class maps.

    Args:
        height, width: the output size (the model's input size).
        upsample: bilinear upsampling factor of the logits before the argmax (1: none).

    Example:
        >>> import numpy as np
        >>> logits = np.zeros((1, 2, 2, 3), "float32")
        >>> logits[0, 0, 1, 2] = logits[0, 1, 0, 1] = 1.0
        >>> np.asarray(ClassMap(4, 4)(logits))[0].tolist()
        [[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 0, 0], [1, 1, 0, 0]]
    """

    def __init__(self, height: int, width: int, upsample: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(upsample) < 1:
            raise ValueError(f"upsample must be a factor >= 1, got {upsample}")
        self.height = int(height)
        self.width = int(width)
        self.upsample = int(upsample)

    def call(self, logits):
        import tensorflow as tf

        if self.upsample > 1:
            size = (min(self.height, logits.shape[1] * self.upsample), min(self.width, logits.shape[2] * self.upsample))
            logits = tf.image.resize(logits, size, method="bilinear")
        rows = nearest_indices(logits.shape[1], self.height)
        columns = nearest_indices(logits.shape[2], self.width)
        ids = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.uint8)
        return tf.gather(tf.gather(ids, columns, axis=2), rows, axis=1)

    def compute_output_spec(self, logits):
        return keras.KerasTensor((logits.shape[0], self.height, self.width), dtype="uint8")

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, upsample=self.upsample)
        return config


def nearest_indices(source: int, target: int) -> np.ndarray:
    """For each of ``target`` positions, the source index ``tf.image.resize(..., "nearest")`` reads.

    TensorFlow's rule with half-pixel centres, in float32 as its kernel computes it:
    ``min(floor((i + 0.5) * source / target), source - 1)`` (checked equal to
    ``tf.image.resize`` for every pair of sizes up to 70 x 200).

    Example:
        >>> nearest_indices(2, 5).tolist(), nearest_indices(4, 2).tolist()
        ([0, 0, 1, 1, 1], [1, 3])
    """
    scale = np.float32(source) / np.float32(target)
    picked = np.floor((np.arange(target, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
    return np.minimum(picked, source - 1).astype(np.int32)


MASK_UPSAMPLE = 2
"""The default ``mask_upsample`` of a ``mask`` output: the logits resized bilinearly by 2 before the argmax.

Measured with `benchmarks/mask_head_camvid.py` (QAT int8 files, the same weights in every file, timed
interleaved at 1 thread): against 1 (argmax at 1/8), 2 scored +0.8 val / +1.0 test mIoU for the 120-epoch
MobileNetV3-Small at 360x480 at the same 5.92 ms (`mask_head_camvid.json`), +1.0 / +1.1 for its 300-epoch
run for 0.21 ms more (6.80 -> 7.01 ms, `mask_head_camvid_300.json`), and +1.2 / +0.7 for a searched
network at 184x240 for 0.12 ms more (2.86 -> 2.98 ms, `mask_head_camvid_searched_2ms.json`). 4 gains
0.0-0.6 more for 6-11% more time; 8 (argmax at full size, two of the runs) 0.0-0.8 more for 22-42%.
"""


def package(model: keras.Model, mode: str = "int8", output: str = "logits",
            input_dtype: str = "uint8", mask_upsample: int = MASK_UPSAMPLE) -> keras.Model:
    """The model that `convert` turns into a TFLite file, for one mode and output.

    Args:
        model: a trained float model or a quantization-aware model (`mobileseg.quant.qat`).
        mode: ``fp32``, ``fp16`` or ``int8``.
        output: ``logits`` or ``mask`` (module docstring).
        input_dtype: ``uint8``, ``int8`` (int8 files only) or ``float32`` (float files only).
        mask_upsample: for ``mask``: the logits' bilinear upsampling factor before the argmax (`ClassMap`).

    Returns:
        A batch-1 functional model taking float32 pixels in [0, 255] (int8 mode; the
        converter makes the input integer) or ``input_dtype`` pixels (float modes).
    """
    check_choice("mode", mode, MODES)
    check_choice("output", output, OUTPUTS)
    check_choice("input_dtype", input_dtype, INPUT_DTYPES)
    if mode == "int8" and input_dtype == "float32":
        raise ValueError("an int8 file takes uint8 or int8 pixels; use fp32/fp16 for a float input")
    if mode != "int8" and input_dtype == "int8":
        raise ValueError(f"a {mode} file takes uint8 or float32 pixels, not int8")
    base = logits_model(model)
    quantized = is_qat_model(base)
    if quantized and mode != "int8":
        raise ValueError(f"{model.name} is quantization-aware; export the float model for {mode}")
    base = freeze(base if quantized else flatten_model(base))
    height, width, channels = base.inputs[0].shape[1:]
    if None in (height, width):
        raise ValueError(f"{model.name} has a dynamic input size; build it with a fixed size to export it")
    cast = mode != "int8" and input_dtype == "uint8"
    image = keras.Input((height, width, channels), batch_size=1, dtype="uint8" if cast else "float32", name="image")
    x = keras.ops.cast(image, "float32") if cast else image
    if mode == "int8" and not quantized:
        x = ActivationQuantizer(fixed_range=IMAGE_RANGE, name="image.quant")(x)
    logits = base(x)
    result = ClassMap(height, width, mask_upsample, name="class_map")(logits) if output == "mask" else logits
    return keras.Model(image, result, name=f"{model.name}_{mode}_{output}")


def convert(model: keras.Model, mode: str = "int8", output: str = "logits", input_dtype: str = "uint8",
            representative: Callable[[], Iterable[Sequence[np.ndarray]]] | None = None,
            mask_upsample: int = MASK_UPSAMPLE) -> bytes:
    """Package a model and convert it to a TFLite flatbuffer with builtin ops only.

    The conversion is `mobileseg.deploy.tflite_convert.convert`, the one the latency table
    times, with the input named ``image``, a ``uint8`` or ``int8`` input in an int8 file, and
    int8 logits (a class map stays uint8).

    Args:
        model: a trained float model, or a quantization-aware model for ``int8``.
        mode, output, input_dtype, mask_upsample: see `package`.
        representative: for ``int8``: yields ``[image]`` float32 batches of one image in
            [0, 255] (`mobileseg.quant.ptq.representative_images`). Required for a float
            model; a quantization-aware model only uses it for tensors no quantizer covers.

    Returns:
        The flatbuffer bytes.
    """
    packaged = package(model, mode, output, input_dtype, mask_upsample)
    if mode == "int8" and representative is None:
        if not is_qat_model(logits_model(model)):
            raise ValueError("post-training int8 quantization needs a representative set of images")
        representative = _constant_images(tuple(packaged.inputs[0].shape))
    return tflite_convert.convert(packaged, mode, representative, input_names=("image",),
                                  input_type="uint8" if input_dtype == "uint8" else "int8",
                                  output_type="int8" if output == "logits" else None)


def _constant_images(shape: tuple) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A stand-in representative set (mid-grey) for a model whose ranges are all trained."""
    def generate():
        yield [np.full((1, *shape[1:]), 128.0, np.float32)]
    return generate


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    """Raise a ValueError naming ``what`` unless ``value`` is one of ``choices``.

    Example:
        >>> check_choice("output", "probabilities", OUTPUTS)
        Traceback (most recent call last):
        ...
        ValueError: unknown output 'probabilities'; expected one of logits, mask
    """
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")


def normalization_of(model: keras.Model) -> dict:
    """The image normalisation a model folds in: its ``Normalization`` layer's mean and std.

    Falls back to `mobileseg.data.normalization`'s constants when the model has no such layer.
    """
    from mobileseg.data.normalization import MEAN_RGB, STD_RGB

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is keras.layers.Normalization:
            mean = keras.ops.convert_to_numpy(layer.mean).reshape(-1)
            std = np.sqrt(keras.ops.convert_to_numpy(layer.variance).reshape(-1))
            return {"mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std]}
    return {"mean": list(MEAN_RGB), "std": list(STD_RGB)}


def sidecar(*, labels: Sequence[str], colors, input_size: tuple[int, int], input_dtype: str, mode: str,
            output: str, normalization: dict, method: str | None = None,
            output_quantization: tuple[float, int] | None = None, source: str | None = None) -> dict:
    """The JSON sidecar of an exported file: what a phone app needs besides the file.

    Keys: ``labels`` and ``colors`` (read by `mobileseg.inference.read_sidecar`),
    ``num_classes``, ``input`` (size, dtype, value range, layout), ``normalization``
    (mean/std on the 0..255 scale, folded into the model), ``output`` (mode, dtype,
    quantization of int8 logits), ``quantization`` (mode and ``qat``/``ptq``), ``source``.

    Example:
        >>> info = sidecar(labels=["sky", "road"], colors=[[0, 0, 255], [128, 64, 128]], input_size=(360, 480),
        ...                input_dtype="uint8", mode="int8", output="mask", normalization={"mean": [0], "std": [1]},
        ...                method="qat")
        >>> info["output"], info["input"]["range"]
        ({'mode': 'mask', 'dtype': 'uint8', 'size': [360, 480]}, [0, 255])
    """
    colors = np.asarray(colors, np.uint8).tolist()
    if len(colors) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(colors)} colours")
    out: dict = {"mode": output}
    if output == "mask":
        out.update(dtype="uint8", size=list(input_size))
    else:
        out["dtype"] = "int8" if mode == "int8" else "float32"
        if output_quantization is not None:
            out["quantization"] = {"scale": float(output_quantization[0]), "zero_point": int(output_quantization[1])}
    return {
        "labels": list(labels),
        "colors": colors,
        "num_classes": len(labels),
        "input": {"size": list(input_size), "dtype": input_dtype, "range": [0, 255], "layout": "NHWC, RGB, batch 1"},
        "normalization": {**normalization, "folded": True,
                          "formula": "(pixel - mean) / std per channel, inside the model"},
        "output": out,
        "quantization": {"mode": mode, "method": method},
        "source": source,
    }


def write_sidecar(model_path: str | Path, info: dict) -> Path:
    """Write ``info`` as ``NAME.json`` next to ``NAME.tflite`` / ``NAME.onnx`` (atomically)."""
    from mobileseg.atomic_write import write_atomic

    return write_atomic(Path(model_path).with_suffix(".json"), json.dumps(info, indent=2) + "\n")
