"""A tiny segmentation network, trained a few steps on synthetic scenes, saved as .keras and .tflite.

Shared by the inference, evaluate and predict tests. The data's images (48x64) are larger
than the model's input (32x48) and of another aspect ratio, so every path resizes.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mobileseg.arch import builder, schema_io
from mobileseg.data.pipeline import Augmentation, eval_dataset, train_dataset
from mobileseg.data.sources import open_source
from mobileseg.deploy import tflite_convert

DATA = "synthetic:40,size=48x64"
INPUT_SIZE = (32, 48)
GENOTYPE = schema_io.loads("""
name: tiny_segmenter
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 12, kernel: 3, stride: 2}
      - {op: conv, width: 16, kernel: 3, stride: 2}
      - {op: mbconv, width: 24, kernel: 3, stride: 2, expansion: 2.0}
head: {op: light, inputs: [{branch: main, cell: 1}, {branch: main, cell: 2}], width: 16}
""", source="tiny_segmenter.yaml")


def trained_model(steps: int = 40, seed: int = 0) -> keras.Model:
    """The tiny network (logits at 1/4 of its input) after a few Adam steps on the synthetic train split."""
    keras.utils.set_random_seed(seed)
    source = open_source(DATA)
    model = builder.build_model(GENOTYPE, source.num_classes, INPUT_SIZE)
    out_h, out_w = model.output.shape[1:3]

    def to_logit_size(image, mask):
        small = tf.image.resize(mask[..., None], (out_h, out_w), method="nearest")[..., 0]
        return image, small

    batches = train_dataset(source, augmentation=Augmentation(INPUT_SIZE, scale_range=(0.6, 1.2)),
                            batch_size=8, seed=seed).map(to_logit_size).repeat()
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255))
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles
    return model


def representative_images(count: int = 16):
    """Calibration samples: real training images resized to the input size, as convert() wants them."""
    source = open_source(DATA)
    images = [image for image, _ in eval_dataset(source, "train", size=INPUT_SIZE).take(count).as_numpy_iterator()]

    def generate():
        for image in images:
            yield [image]
    return generate


def save_models(model: keras.Model, folder: Path, modes=("fp32", "int8")) -> dict[str, Path]:
    """Write model.keras and model_MODE.tflite for each mode; returns {"keras": ..., MODE: ...}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"keras": folder / "model.keras"}
    model.save(paths["keras"])
    for mode in modes:
        paths[mode] = folder / f"model_{mode}.tflite"
        paths[mode].write_bytes(tflite_convert.convert(model, mode, representative=representative_images()))
    return paths


def constant_model(num_classes: int, winner: int, input_size=(16, 16)) -> keras.Model:
    """Logits at 1/4 of the input that always favour class ``winner`` (a hand-checkable model)."""
    inputs = keras.Input((*input_size, 3), name="image")
    bias = np.zeros(num_classes, np.float32)
    bias[winner] = 1.0
    logits = keras.layers.Conv2D(num_classes, 1, strides=4, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(bias), name="logits")(inputs)
    return keras.Model(inputs, logits, name="constant")


@keras.saving.register_keras_serializable(package="mobileseg_tests")
class ArgmaxIds(keras.layers.Layer):
    """Logits -> uint8 class ids (tf.argmax: keras.ops.argmax adds a BitwiseAnd that TFLite lacks)."""

    def call(self, logits):
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)

    def compute_output_spec(self, logits):
        return keras.KerasTensor(logits.shape[:-1], dtype="uint8")


def class_map_model(logits_model: keras.Model) -> keras.Model:
    """The model with its logits resized to the input and argmaxed to uint8 ids (an ``--output mask`` export)."""
    height, width = logits_model.input.shape[1:3]
    logits = keras.layers.Resizing(height, width, interpolation="bilinear")(logits_model.output)
    return keras.Model(logits_model.input, ArgmaxIds()(logits), name="class_map")


def convert_typed(model: keras.Model, input_type, output_type=None, representative=None) -> bytes:
    """Full-integer TFLite with the given input (and output) types, e.g. uint8 input.

    `tflite_convert.convert` always gives int8 I/O; this covers the other integer types
    an outside export may use.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as saved:
        spec = tf.TensorSpec((1, *model.input.shape[1:]), tf.float32, name="image")
        model.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative or tflite_convert.random_representative(
            [spec.shape], low=0.0, high=255.0)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = input_type
        if output_type is not None:
            converter.inference_output_type = output_type
        return converter.convert()
