"""The training wrapper's loss: distillation from a teacher adds its KL term and changes the gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.arch import builder
from mobileseg.training.factories import make_loss
from mobileseg.training.losses import distillation_kl
from mobileseg.training.training_model import TrainingModel
from tests.training.test_trainer import GENOTYPE, SIZE, build, config


def test_distillation_changes_the_loss_and_the_gradients():
    keras.utils.set_random_seed(0)
    student, teacher = build(), builder.build_model(GENOTYPE, 8, SIZE)
    images = np.random.default_rng(0).uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 8, (2, *SIZE))
    loss = make_loss(config(distill_weight=2.0))

    def loss_and_grads(with_teacher):
        model = TrainingModel(student, loss, teacher if with_teacher else None)
        with tf.GradientTape() as tape:
            value = model.compute_loss(images, labels, model(images, training=False))
        return float(value), tape.gradient(value, student.trainable_variables)

    plain, plain_grads = loss_and_grads(False)
    distilled, distilled_grads = loss_and_grads(True)
    kl = float(distillation_kl(student(images)[0], teacher(images), 1.0))
    assert kl > 0 and distilled == pytest.approx(plain + 2.0 * kl, rel=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(plain_grads, distilled_grads))
