"""Full-resolution validation of a Keras segmentation model, during training and after.

The networks `mobileseg.arch.builder` makes have a fixed input size (attention blocks need
static shapes), but their weights do not depend on it. So a split is evaluated at its own
resolution by a copy of the model rebuilt for that size (`resized_copy`, one per image
size met, weights refreshed at every call), never by resizing the images to the training
crop. Images are padded (with the ignore index in the mask) to a multiple of the model's
output stride; in the graph the logits are resized bilinearly to the padded image size and
argmaxed, and the class ids are counted in one `mobileseg.training.miou.ConfusionMatrix`.
"""

from __future__ import annotations

import copy
import time

import keras
import tensorflow as tf

from mobileseg.data.pipeline import eval_dataset
from mobileseg.data.source import Pair, SegmentationSource
from mobileseg.training.miou import ConfusionMatrix


def input_size(model: keras.Model) -> tuple[int, int] | None:
    """(height, width) of a model's image input, or None when dynamic."""
    height, width = model.inputs[0].shape[1:3]
    return (int(height), int(width)) if height and width else None


def output_stride(model: keras.Model) -> int:
    """How many input pixels one logit covers along each axis (8 for logits at 1/8).

    Example:
        >>> inputs = keras.Input((32, 48, 3))
        >>> output_stride(keras.Model(inputs, keras.layers.Conv2D(2, 1, strides=8)(inputs)))
        8
    """
    size = input_size(model)
    out = model.outputs[0].shape[1:3]  # the main logits
    if size is None or not all(out):
        raise ValueError(f"{model.name}: needs a static input size to tell its output stride")
    return max(1, round(size[0] / out[0]))


def resized_copy(model: keras.Model, size: tuple[int, int] | None, dtype: str | None = None) -> keras.Model:
    """The same functional model, rebuilt for images of ``size``, with the same weights.

    Args:
        model: a functional model with one image input [B, H, W, 3] (any batch size).
        size: the new (height, width); None keeps the model's.
        dtype: a dtype policy for every layer (e.g. "float32" for a model trained under
            mixed precision); None keeps each layer's.

    Returns:
        A new model (new layers, copied weights) taking [B, size[0], size[1], 3].

    Example:
        >>> import numpy as np
        >>> inputs = keras.Input((16, 16, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(2, 3, strides=2, padding="same")(inputs))
        >>> big = resized_copy(model, (32, 48))
        >>> tuple(big.output.shape), all(np.array_equal(a, b) for a, b in zip(big.get_weights(), model.get_weights()))
        ((None, 16, 24, 2), True)
    """
    if len(model.inputs) != 1:
        raise ValueError(f"{model.name}: resized_copy needs a model with one image input")
    config = copy.deepcopy(model.get_config())
    for layer in config["layers"]:
        layer.pop("build_config", None)  # rebuilt from the new input shape
        if dtype is not None and layer["class_name"] != "InputLayer" and "dtype" in layer["config"]:
            layer["config"]["dtype"] = dtype
        if layer["class_name"] == "InputLayer" and size is not None:
            batch_shape = list(layer["config"]["batch_shape"])
            layer["config"]["batch_shape"] = [None, int(size[0]), int(size[1]), *batch_shape[3:]]
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


class Evaluator:
    """mIoU, pixel accuracy and per-class IoU of a model on one split, at full resolution.

    The split is checked and its dataset built once; each call evaluates the model's
    current weights. For a model with a dynamic input it runs the model itself.

    Args:
        source: the data set.
        split: which split.
        pad_to_multiple: pad images to a multiple of this (the model's `output_stride`).
        batch_size: images per batch (images of unequal size are padded to the largest).
        size: resize every pair to this (height, width) instead of keeping full resolution.
        skip_bad: leave bad pairs out instead of stopping at the first.
        pairs: evaluate these pairs instead of checking the split.

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> inputs = keras.Input((16, 16, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(8, 1, strides=4)(inputs))
        >>> result = Evaluator(SyntheticSource(10, size=(24, 32)), pad_to_multiple=4)(model)
        >>> sorted(result)[:4], result["images"], 0.0 <= result["miou"] <= 1.0
        (['images', 'miou', 'per_class_iou', 'pixel_accuracy'], 1, True)
    """

    def __init__(self, source: SegmentationSource, split: str = "val", *, pad_to_multiple: int = 1,
                 batch_size: int = 1, size: tuple[int, int] | None = None, skip_bad: bool = False,
                 pairs: list[Pair] | None = None):
        self.source = source
        self.split = split
        self.dataset = eval_dataset(source, split, batch_size=batch_size, size=size,
                                    pad_to_multiple=pad_to_multiple, skip_bad=skip_bad, pairs=pairs)
        self._runners: dict[tuple[int, int], tuple[keras.Model, object]] = {}
        self._model_id: int | None = None

    def _runner(self, model: keras.Model, image_size: tuple[int, int]):
        if input_size(model) in (None, image_size):
            key = (-1, -1)
            if key not in self._runners:
                self._runners[key] = (model, _predictor(model))
            return self._runners[key]
        if image_size not in self._runners:
            copy_ = resized_copy(model, image_size)
            self._runners[image_size] = (copy_, _predictor(copy_))
        return self._runners[image_size]

    def __call__(self, model: keras.Model) -> dict:
        """Evaluate `model` (its first output); returns `ConfusionMatrix.as_dict` plus images and seconds."""
        if self._model_id != id(model):
            self._runners.clear()
            self._model_id = id(model)
        started = time.perf_counter()
        weights = None
        refreshed: set[tuple[int, int]] = set()
        matrix = ConfusionMatrix(self.source.num_classes, self.source.ignore_index)
        images = 0
        for batch_images, masks in self.dataset:
            image_size = tuple(int(d) for d in batch_images.shape[1:3])
            runner, predict = self._runner(model, image_size)
            if runner is not model and image_size not in refreshed:
                weights = model.get_weights() if weights is None else weights
                runner.set_weights(weights)
                refreshed.add(image_size)
            matrix.update(masks.numpy(), predict(batch_images).numpy())
            images += int(batch_images.shape[0])
        result = matrix.as_dict(list(self.source.class_names))
        result.update(images=images, seconds=time.perf_counter() - started)
        return result


def _predictor(model: keras.Model):
    """A graph function: images -> class ids at the images' size (logits resized, then argmax)."""

    @tf.function(reduce_retracing=True)
    def predict(images):
        logits = model(images, training=False)
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        logits = tf.image.resize(logits, tf.shape(images)[1:3], method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return predict


def evaluate(model: keras.Model, source: SegmentationSource, split: str = "val", **kwargs) -> dict:
    """Evaluate a model on one split at full resolution (see `Evaluator`, whose arguments `kwargs` are).

    The images are padded to a multiple of the model's output stride unless
    ``pad_to_multiple`` is given.

    Returns:
        ``miou``, ``pixel_accuracy``, ``per_class_iou`` (class name -> IoU, None when the
        class is absent from both ground truth and predictions), ``pixels``, ``images``,
        ``seconds``.
    """
    if "pad_to_multiple" not in kwargs:
        kwargs["pad_to_multiple"] = output_stride(model) if input_size(model) else 1
    return Evaluator(source, split, **kwargs)(model)
