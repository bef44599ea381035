"""One way to run a segmentation model, whether it is a ``.keras`` file or a ``.tflite`` file.

``Segmenter.load(path)`` returns a Keras-backed (`KerasSegmenter`) or a LiteRT-backed
(`LiteRTSegmenter`) object; evaluation and prediction use only the `Segmenter`
interface, so both kinds of model see exactly the same preprocessing and
postprocessing:

1. Images come in as float32 RGB in [0, 255], [B, H, W, 3] (what
   `mobileseg.data.pipeline.eval_dataset` yields); the model normalises them itself.
2. A model with a fixed input size (every TFLite model, and every Keras model built
   with one, which is how `mobileseg.arch.builder.build_model` builds them) gets the
   images resized to that size, bilinear (``tf.image.resize``, as the pipeline
   resizes), whatever their own size. A Keras model with a dynamic input size gets
   them as they are (a TFLite model with a dynamic input is refused).
3. The model's output is either logits [B, h, w, C] (float, or int8/uint8 with a
   scale and zero point, dequantized here), typically at 1/8 or 1/4 of the input,
   or a class map [B, h, w] (or [B, h, w, 1]) of integer ids, as an export with
   ``--output mask`` writes. `predict` resizes logits bilinearly to the images' full
   resolution and takes the argmax there; a class map is resized nearest.

TFLite inputs may be float32, or int8 / uint8 quantized with the tensor's scale and
zero point (an integer input without quantization parameters gets the raw pixel
values). A TFLite model takes one image per invoke (its batch is fixed to 1); batches
are run image by image.

Class names and colours of a model come from a JSON sidecar next to it, when present
(`read_sidecar`): ``NAME.json`` for ``NAME.keras`` / ``NAME.tflite`` (or
``NAME.tflite.json``), holding ``{"labels": [...], "colors": [[r, g, b], ...]}``.
Without one, classes are named ``class_0``, ``class_1``, ... and coloured with the
deterministic `default_palette`.

Example:
    >>> import keras, pathlib, tempfile
    >>> inputs = keras.Input((8, 8, 3))
    >>> logits = keras.layers.Conv2D(3, 1, strides=4)(inputs)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "one_conv.keras"
    >>> keras.Model(inputs, logits).save(path)
    >>> segmenter = Segmenter.load(path)
    >>> segmenter.backend, segmenter.input_size, segmenter.num_classes, segmenter.output_kind
    ('keras', (8, 8), 3, 'logits')
    >>> images = np.zeros((1, 30, 40, 3), np.float32)
    >>> segmenter.predict_logits(images).shape, segmenter.predict(images).shape
    ((1, 2, 2, 3), (1, 30, 40))
"""

from __future__ import annotations

import abc
import json
import os
from pathlib import Path

import numpy as np

MODEL_SUFFIXES = (".keras", ".tflite")
"""Model files `Segmenter.load` reads."""


class ModelError(ValueError):
    """A model file (or its sidecar) that cannot be used; the message names the file."""


def default_palette(num_colors: int) -> np.ndarray:
    """Deterministic colours for a model without a sidecar: the PASCAL VOC bit pattern.

    The same colours a ``folder:`` data set without ``colors`` gets
    (`mobileseg.data.folder.default_colors`).

    Args:
        num_colors: how many colours (class ids 0..num_colors-1).

    Returns:
        uint8 [num_colors, 3].

    Example:
        >>> default_palette(4).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    """
    from mobileseg.data.folder import default_colors

    return np.asarray(default_colors(num_colors), np.uint8).reshape(num_colors, 3)


def sidecar_paths(model_path: str | os.PathLike) -> tuple[Path, Path]:
    """Where a model's labels sidecar is looked for, in order: ``NAME.json``, ``NAME.SUFFIX.json``.

    Example:
        >>> [p.name for p in sidecar_paths("export/model_int8.tflite")]
        ['model_int8.json', 'model_int8.tflite.json']
    """
    path = Path(model_path)
    return path.with_suffix(".json"), path.with_name(path.name + ".json")


def read_sidecar(model_path: str | os.PathLike) -> tuple[Path, tuple[str, ...], np.ndarray | None] | None:
    """The class names and colours stored next to a model, or None when there is no sidecar.

    The sidecar is JSON: ``{"labels": ["sky", ...], "colors": [[r, g, b], ...]}``;
    ``colors`` is optional, other keys are ignored.

    Returns:
        (the sidecar's path, names, colours uint8 [C, 3] or None), or None.

    Raises:
        ModelError: the sidecar exists but is not valid (the file and key are named).

    Example:
        >>> import pathlib, tempfile
        >>> model = pathlib.Path(tempfile.mkdtemp()) / "m.tflite"
        >>> read_sidecar(model) is None
        True
        >>> _ = model.with_suffix(".json").write_text('{"labels": ["a", "b"], "colors": [[1, 2, 3], [4, 5, 6]]}')
        >>> path, names, colors = read_sidecar(model)
        >>> path.name, names, colors.tolist()
        ('m.json', ('a', 'b'), [[1, 2, 3], [4, 5, 6]])
        >>> _ = model.with_suffix(".json").write_text('{"labels": ["a", "b"], "colors": [[1, 2, 3]]}')
        >>> read_sidecar(model)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mobileseg.inference.ModelError: .../m.json: colors: expected 2 [r, g, b] triples of 0..255 (one per label)
    """
    found = [p for p in sidecar_paths(model_path) if p.is_file()]
    if not found:
        return None
    sidecar = found[0]
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{sidecar}: cannot read the labels sidecar: {error}") from None
    if not isinstance(data, dict) or "labels" not in data:
        raise ModelError(f"{sidecar}: labels: missing key (expected {{\"labels\": [...], \"colors\": [...]}})")
    labels = data["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels):
        raise ModelError(f"{sidecar}: labels: expected a non-empty list of class names")
    colors = data.get("colors")
    if colors is None:
        return sidecar, tuple(labels), None
    ok = (isinstance(colors, list) and len(colors) == len(labels)
          and all(isinstance(c, list) and len(c) == 3
                  and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
                  for c in colors))
    if not ok:
        raise ModelError(f"{sidecar}: colors: expected {len(labels)} [r, g, b] triples of 0..255 (one per label)")
    return sidecar, tuple(labels), np.asarray(colors, np.uint8)


def _resize(images: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Resize [B, H, W, C] with tf.image.resize (no-op at the same size)."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    import tensorflow as tf

    return tf.image.resize(images, size, method=method).numpy()


class Segmenter(abc.ABC):
    """A segmentation model behind one interface, from a ``.keras`` or a ``.tflite`` file.

    Use `Segmenter.load`; the subclasses differ only in how they run one batch.

    Attributes:
        path: the model file.
        backend: ``"keras"`` or ``"litert"``.
        input_size: (height, width) the model takes, or None for a dynamic input size.
        output_kind: ``"logits"`` or ``"classes"`` (an integer class map).
        num_classes: logits channels; for a class map, the sidecar's label count or None.
        class_names: the sidecar's labels, else ``class_0``, ``class_1``, ...
        colors: uint8 [C, 3]: the sidecar's colours, else `default_palette` (256 of
            them for a class map of unknown class count).
        sidecar: the path of the labels sidecar read, or None.

    Example:
        >>> Segmenter.load("/no/such/model.keras")
        Traceback (most recent call last):
        ...
        mobileseg.inference.ModelError: no such model file: /no/such/model.keras
    """

    backend = ""

    def __init__(self, path: Path, input_size: tuple[int, int] | None, output_shape: tuple, output_dtype):
        self.path = path
        self.input_size = input_size
        dtype = np.dtype(output_dtype)
        classes = np.issubdtype(dtype, np.integer) and (len(output_shape) == 3 or output_shape[-1] == 1)
        if not classes and len(output_shape) != 4:
            raise ModelError(f"{path}: output has shape {tuple(output_shape)}; expected logits [B, h, w, C] "
                             "or a class map [B, h, w]")
        self.output_kind = "classes" if classes else "logits"
        self.num_classes = None if classes else int(output_shape[-1])
        sidecar, names, colors = read_sidecar(path) or (None, None, None)
        self.sidecar = sidecar
        if names is not None:
            if self.num_classes is not None and len(names) != self.num_classes:
                raise ModelError(f"{sidecar}: {len(names)} labels but the model outputs "
                                 f"{self.num_classes} classes")
            self.num_classes = len(names)
        count = self.num_classes or 256
        self.class_names = names or tuple(f"class_{i}" for i in range(count))
        self.colors = colors if colors is not None else default_palette(count)

    @staticmethod
    def load(path: str | os.PathLike, num_threads: int | None = None) -> "Segmenter":
        """Open a ``.keras`` or ``.tflite`` model.

        Args:
            path: the model file; the suffix picks the backend.
            num_threads: LiteRT threads (default: every core). Keras uses TensorFlow's
                own thread pools.

        Raises:
            ModelError: missing file, another suffix, or a file that does not load (named).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"no such model file: {path}")
        if path.suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{path}: unsupported model type {path.suffix or '(no suffix)'!r}; "
                             "expected a .keras or .tflite file")
        if path.suffix == ".keras":
            return KerasSegmenter(path)
        return LiteRTSegmenter(path, num_threads or os.cpu_count() or 1)

    @abc.abstractmethod
    def _run(self, images: np.ndarray) -> np.ndarray:
        """The model's first output for float32 images already at the input size."""

    def _model_input(self, images) -> np.ndarray:
        """Check the images and resize them to the input size (when the model has a fixed one)."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images [B, H, W, 3], got shape {images.shape}")
        return images if self.input_size is None else _resize(images, self.input_size, "bilinear")

    def predict_logits(self, images) -> np.ndarray:
        """Float logits [B, h, w, C] at the model's output resolution.

        Args:
            images: float RGB in [0, 255], [B, H, W, 3]; resized to `input_size` first.

        Raises:
            ModelError: the model outputs a class map, not logits (use `predict`).
        """
        if self.output_kind != "logits":
            raise ModelError(f"{self.path}: outputs a class map, not logits; use predict()")
        return self._run(self._model_input(images)).astype(np.float32)

    def predict(self, images) -> np.ndarray:
        """Class ids int32 [B, H, W] at the images' own (full) resolution.

        Logits are resized bilinearly to (H, W) and argmaxed there; a class map is
        resized nearest.

        Args:
            images: float RGB in [0, 255], [B, H, W, 3].
        """
        full_size = np.shape(images)[1:3]
        output = self._run(self._model_input(images))
        if self.output_kind == "classes":
            ids = output.reshape(output.shape[:3]).astype(np.int32)[..., None]
            return _resize(ids, full_size, "nearest")[..., 0].astype(np.int32)
        logits = _resize(output.astype(np.float32), full_size, "bilinear")
        return np.argmax(logits, axis=-1).astype(np.int32)

    def describe(self) -> str:
        """One line: file, backend, input size, output.

        Example:
            >>> import keras, pathlib, tempfile
            >>> inputs = keras.Input((None, None, 3))
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
            >>> keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(path)
            >>> Segmenter.load(path).describe()  # doctest: +ELLIPSIS
            '.../m.keras (keras, input any size, logits, 2 classes)'
        """
        size = "x".join(map(str, self.input_size)) if self.input_size else "any size"
        classes = f"{self.num_classes} classes" if self.num_classes else "classes unknown"
        return f"{self.path} ({self.backend}, input {size}, {self.output_kind}, {classes})"


class KerasSegmenter(Segmenter):
    """A ``.keras`` model, run with ``predict_on_batch``; the first output if there are several.

    Args:
        path: the ``.keras`` file, float or quantization-aware (`mobileseg.keras_file`).
    """

    backend = "keras"

    def __init__(self, path: Path):
        from mobileseg.keras_file import load_keras_model

        try:
            self.model = load_keras_model(path)
        except Exception as error:  # Keras raises many types for a bad archive
            raise ModelError(f"{path}: cannot load the Keras model: {error}") from None
        if len(self.model.inputs) != 1:
            raise ModelError(f"{path}: the model takes {len(self.model.inputs)} inputs; expected one image")
        height, width = self.model.inputs[0].shape[1:3]
        output = self.model.outputs[0]
        super().__init__(path, (height, width) if height and width else None,
                         tuple(output.shape), output.dtype)

    def _run(self, images: np.ndarray) -> np.ndarray:
        output = self.model.predict_on_batch(images)
        return np.asarray(output[0] if isinstance(output, (list, tuple)) else output)


def quantize_input(images: np.ndarray, detail: dict) -> np.ndarray:
    """Float pixels -> a LiteRT input tensor's dtype: scaled for int8/uint8 with quantization
    parameters, rounded raw values for an integer input without them, unchanged for float.

    Example:
        >>> pixels = np.array([0.0, 127.6, 255.0], np.float32)
        >>> quantize_input(pixels, {"dtype": np.int8, "quantization": (1.0, -128)}).tolist()
        [-128, 0, 127]
        >>> quantize_input(pixels, {"dtype": np.uint8, "quantization": (0.0, 0)}).tolist()
        [0, 128, 255]
        >>> quantize_input(pixels, {"dtype": np.float32, "quantization": (0.0, 0)}).tolist()
        [0.0, 127.5999984741211, 255.0]
    """
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    values = images if not scale else images / scale + zero_point
    return np.clip(np.round(values), info.min, info.max).astype(dtype)


def _signature_output_order(name: str) -> tuple[int, str]:
    """``output_12`` -> (12, ...): signature outputs sort in the model's order."""
    head, _, tail = name.rpartition("_")
    return (int(tail), head) if tail.isdigit() else (1 << 30, name)


class LiteRTSegmenter(Segmenter):
    """A ``.tflite`` model in LiteRT (XNNPACK applied by default); its first output.

    Args:
        path: the ``.tflite`` file.
        num_threads: LiteRT threads.
    """

    backend = "litert"

    def __init__(self, path: Path, num_threads: int = 1):
        from mobileseg.litert_interpreter import new_interpreter

        data = path.read_bytes()
        if data[4:8] != b"TFL3":
            raise ModelError(f"{path} is not a TFLite model (no 'TFL3' file identifier at bytes 4-8)")
        try:
            self.interpreter = new_interpreter(model_content=data, num_threads=num_threads)
        except (RuntimeError, ValueError) as error:
            raise ModelError(f"{path}: LiteRT cannot load it: {error}") from None
        self.num_threads = num_threads
        self.interpreter.allocate_tensors()
        if self.interpreter.get_signature_list():  # its output names give the model's output order
            runner = self.interpreter.get_signature_runner()
            inputs = list(runner.get_input_details().values())
            outputs = runner.get_output_details()
            self.output_detail = outputs[min(outputs, key=_signature_output_order)]
            del runner  # it holds tensor references that would block invoke()
        else:
            inputs = self.interpreter.get_input_details()
            self.output_detail = self.interpreter.get_output_details()[0]
        if len(inputs) != 1:
            raise ModelError(f"{path}: the model takes {len(inputs)} inputs; expected one image")
        self.input_detail = inputs[0]
        signature = [int(d) for d in self.input_detail["shape_signature"]]
        if len(signature) != 4 or signature[-1] != 3 or min(signature[1:]) < 1:
            raise ModelError(f"{path}: input has shape {signature}; expected a fixed [1, H, W, 3] "
                             "(convert with a fixed input size)")
        super().__init__(path, (signature[1], signature[2]),
                         tuple(int(d) for d in self.output_detail["shape"]), self.output_detail["dtype"])

    def _dequantize(self, output: np.ndarray) -> np.ndarray:
        if self.output_kind == "classes" or not np.issubdtype(output.dtype, np.integer):
            return output
        scale, zero_point = self.output_detail["quantization"]
        if not scale:
            raise ModelError(f"{self.path}: integer logits without a quantization scale")
        return (output.astype(np.float32) - zero_point) * np.float32(scale)

    def _run(self, images: np.ndarray) -> np.ndarray:
        index = self.input_detail["index"]
        outputs = []
        for image in images:
            self.interpreter.set_tensor(index, quantize_input(image[None], self.input_detail))
            self.interpreter.invoke()
            outputs.append(self._dequantize(self.interpreter.get_tensor(self.output_detail["index"])))
        return np.concatenate(outputs)
