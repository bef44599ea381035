"""Full-resolution validation: resized copies compute what a model built at that size computes,
and the Evaluator counts every labelled pixel of the split once, at its own resolution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.arch import builder, schema_io
from mobileseg.data.pipeline import eval_dataset
from mobileseg.data.synthetic import SyntheticSource
from mobileseg.training.evaluation import Evaluator, evaluate, input_size, output_stride, resized_copy
from mobileseg.training.miou import ConfusionMatrix

ATTENTION_NET = schema_io.loads("""
name: tiny_attention
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: 16, stride: 2}
      - {op: mbconv, width: 16, stride: 2}
      - {op: sea_attention, heads: 2, key_dim: 8}
head: {op: light, inputs: [{branch: main}], width: 16}
""")


def test_resized_copy_equals_the_network_built_at_that_size():
    small = builder.build_model(ATTENTION_NET, 5, (32, 32))
    big = resized_copy(small, (48, 64))
    reference = builder.build_model(ATTENTION_NET, 5, (48, 64))
    reference.set_weights(small.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 64, 3)).astype("float32")
    assert input_size(big) == (48, 64) and tuple(big.output.shape) == (None, 6, 8, 5)
    np.testing.assert_allclose(big(images), reference(images), atol=1e-5)
    assert small.input.shape[1:3] == (32, 32)  # the original is untouched


def test_output_stride():
    assert output_stride(builder.build_model(ATTENTION_NET, 5, (32, 48))) == 8


def test_evaluator_counts_every_labelled_pixel_at_full_resolution():
    source = SyntheticSource(20, size=(36, 44))  # not multiples of 8: padded for the network
    model = builder.build_model(ATTENTION_NET, source.num_classes, (32, 32))
    result = Evaluator(source, "val", pad_to_multiple=8)(model)

    expected = ConfusionMatrix(source.num_classes)
    runner = resized_copy(model, (40, 48))
    for image, mask in eval_dataset(source, "val"):
        padded = tf.pad(image, [[0, 0], [0, 4], [0, 4], [0, 0]])
        logits = tf.image.resize(runner(padded), (40, 48), method="bilinear")[:, :36, :44]
        expected.update(mask.numpy(), logits.numpy())
    _, masks = source.arrays("val")
    assert result["images"] == len(masks) == 3
    assert result["pixels"] == int((masks != 255).sum())  # every labelled pixel, none of the padding
    assert result["miou"] == pytest.approx(expected.miou())
    assert result["per_class_iou"] == pytest.approx(expected.as_dict(list(source.class_names))["per_class_iou"])


def test_evaluator_follows_the_weights_and_evaluate_pads_by_itself():
    source = SyntheticSource(20, size=(32, 40))
    inputs = keras.Input((32, 40, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1, strides=8)(inputs))
    evaluator = Evaluator(source, "val", pad_to_multiple=8)
    kernel, bias = model.get_weights()
    model.set_weights([np.zeros_like(kernel), np.eye(8)[0] * 5.0])  # predicts class 0 (sky) everywhere
    sky = evaluator(model)
    model.set_weights([np.zeros_like(kernel), np.eye(8)[2] * 5.0])  # predicts class 2 (road) everywhere
    road = evaluator(model)
    _, masks = source.arrays("val")
    labelled = masks != 255
    assert sky["pixel_accuracy"] == pytest.approx((masks[labelled] == 0).mean())
    assert road["pixel_accuracy"] == pytest.approx((masks[labelled] == 2).mean())
    assert evaluate(model, source, "val")["pixel_accuracy"] == pytest.approx(road["pixel_accuracy"])
