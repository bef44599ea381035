"""ONNX export through tf2onnx, checked with onnxruntime, and an ONNX `Segmenter` for evaluation.

The ONNX file is the float model packaged like the TFLite files (`mobileseg.deploy.packaging`:
uint8 or float32 pixels in, normalisation inside, logits or a uint8 class map out),
converted with ``tf2onnx.convert.from_function`` and an explicit input signature (the
route that works for Keras 3 models), then run once in onnxruntime against Keras.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np

from mobileseg.atomic_write import atomic_path
from mobileseg.deploy.packaging import MASK_UPSAMPLE, package
from mobileseg.inference import ModelError, Segmenter

DEFAULT_OPSET = 17


def to_onnx(model: keras.Model, path: str | Path, output: str = "logits", input_dtype: str = "uint8",
            mask_upsample: int = MASK_UPSAMPLE,
            opset: int = DEFAULT_OPSET) -> keras.Model:
    """Write ``model`` (float) as an ONNX file, atomically; returns the packaged Keras model it was made from.

    Args:
        model: a trained float model.
        path: the ``.onnx`` file to write.
        output: ``logits`` or ``mask``.
        input_dtype: ``uint8`` or ``float32`` pixels.
        mask_upsample: for ``mask``: see `mobileseg.deploy.packaging.package`.
        opset: the ONNX opset.
    """
    import tensorflow as tf
    import tf2onnx

    packaged = package(model, "fp32", output, input_dtype, mask_upsample)
    tensor = packaged.inputs[0]
    spec = tf.TensorSpec((1, *tensor.shape[1:]), tf.dtypes.as_dtype(tensor.dtype), name="image")
    def serve(image):
        return {output: packaged(image, training=False)}

    with _quiet_tf2onnx(), atomic_path(path) as temporary:
        tf2onnx.convert.from_function(tf.function(serve, autograph=False), input_signature=[spec], opset=opset,
                                      output_path=str(temporary))
    return packaged


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx logs every optimisation at INFO through absl; keep warnings only."""
    import logging

    from absl import logging as absl_logging

    level, logger = absl_logging.get_verbosity(), logging.getLogger("tf2onnx")
    old = logger.level
    absl_logging.set_verbosity(absl_logging.WARNING)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)
        logger.setLevel(old)


def run_onnx(path: str | Path, image: np.ndarray) -> np.ndarray:
    """The first output of an ONNX file on one input batch, in onnxruntime (CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image})[0]


def onnx_parity(path: str | Path, packaged: keras.Model, images: list[np.ndarray]) -> dict:
    """Compare an ONNX file with the Keras model it came from on ``images`` (float [0, 255] batches of one).

    Returns:
        ``{"max_abs_diff": ...}`` for logits, ``{"mask_agreement": ...}`` (share of equal
        pixels) for a class map.
    """
    dtype = np.dtype(packaged.inputs[0].dtype)
    diffs, agree = [], []
    for image in images:
        x = np.clip(np.round(image), 0, 255).astype(dtype) if dtype == np.uint8 else image.astype(dtype)
        got = run_onnx(path, x)
        want = np.asarray(packaged(x, training=False))
        if np.issubdtype(want.dtype, np.integer):
            agree.append(float(np.mean(got == want)))
        else:
            diffs.append(float(np.max(np.abs(got.astype(np.float32) - want))))
    return {"mask_agreement": min(agree)} if agree else {"max_abs_diff": max(diffs)}


class OnnxSegmenter(Segmenter):
    """A ``.onnx`` model behind `mobileseg.inference.Segmenter`, so `mobileseg.evaluate` scores it like the rest.

    Args:
        path: the ``.onnx`` file (batch 1, ``[1, H, W, 3]`` uint8 or float32 input).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path):
        import onnxruntime

        path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: onnxruntime cannot load it: {error}") from None
        self.input = self.session.get_inputs()[0]
        shape = self.input.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:3]):
            raise ModelError(f"{path}: input has shape {shape}; expected a fixed [1, H, W, 3]")
        self.input_dtype = np.uint8 if "uint8" in self.input.type else np.float32
        output = self.session.get_outputs()[0]
        dtype = np.uint8 if "uint8" in output.type else np.float32
        super().__init__(path, (shape[1], shape[2]), tuple(output.shape), dtype)

    def _run(self, images: np.ndarray) -> np.ndarray:
        outputs = []
        for image in images:
            x = image[None]
            if self.input_dtype == np.uint8:
                x = np.clip(np.round(x), 0, 255).astype(np.uint8)
            outputs.append(self.session.run(None, {self.input.name: x.astype(self.input_dtype)})[0])
        return np.concatenate(outputs)
