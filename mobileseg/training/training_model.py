"""`TrainingModel`: the Keras model `fit` trains, a segmentation model whose loss is the run's `SegmentationLoss`."""

from __future__ import annotations

import keras
import tensorflow as tf

from mobileseg.training.distribute import is_multi_worker
from mobileseg.training.losses import SegmentationLoss


class TrainingModel(keras.Model):
    """Wraps a segmentation model for ``fit``: its loss is a `SegmentationLoss`, with a teacher if given.

    Calling it calls the student (all outputs). ``compute_loss`` resizes and compares every
    output with the labels, adds the distillation term from the frozen teacher's logits on
    the same images, and logs the parts (``main_loss``, ``aux_loss``, ``distill_loss``)
    when there is more than one. Only the student is saved (`fit` saves it, with the
    optimizer this wrapper is compiled with).

    Args:
        student: the model being trained; outputs main logits [, auxiliary logits ...].
        loss: the objective.
        teacher: a frozen model predicting the same classes on the same images, or None.

    Example:
        >>> import numpy as np
        >>> inputs = keras.Input((16, 16, 3))
        >>> student = keras.Model(inputs, keras.layers.Conv2D(3, 1, strides=8, kernel_initializer="zeros")(inputs))
        >>> from mobileseg.training.factories import make_loss
        >>> from mobileseg.training.train_config import TrainConfig
        >>> trainer = TrainingModel(student, make_loss(TrainConfig(input_size=(16, 16), ohem_thresh=None)))
        >>> trainer.compile(optimizer="sgd")
        >>> images, labels = np.zeros((2, 16, 16, 3), "float32"), np.ones((2, 16, 16), "int32")
        >>> round(trainer.evaluate(images, labels, verbose=0), 4)  # zero weights: uniform over 3 classes
        1.0986
    """

    def __init__(self, student: keras.Model, loss: SegmentationLoss, teacher: keras.Model | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{student.name}_training"), **kwargs)
        self.student = student
        self.objective = loss
        self.teacher = teacher
        self.has_aux = len(student.outputs) > 1
        parts = (["main"] if self.has_aux or teacher is not None else []) + (["aux"] if self.has_aux else []) + (
            ["distill"] if teacher is not None else [])
        self.part_trackers = {part: keras.metrics.Mean(name=f"{part}_loss") for part in parts}  # fit logs them

    def call(self, images, training=False):
        return self.student(images, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: the student is built and the optimizer too (`fit`); Keras' own version reduces a
        batch across replicas first, which fails under MultiWorkerMirroredStrategy (keras-team/keras#20585)."""

    def train_step(self, data):
        """Keras' step; on several machines its logs have one element each (Keras averages them across
        workers along axis 0, which a scalar has not: keras-team/keras#20585), averaged back to scalars."""
        logs = super().train_step(data)
        if is_multi_worker(tf.distribute.get_strategy()):
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = None
        if self.teacher is not None:
            teacher_logits = self.teacher(x, training=False)
            if isinstance(teacher_logits, (list, tuple)):
                teacher_logits = teacher_logits[0]
        terms = self.objective(y, y_pred, teacher_logits)
        for part, tracker in self.part_trackers.items():
            tracker.update_state(getattr(terms, part))
        total = terms.total
        for extra in self.losses:  # layer regularizers, if any
            total = total + keras.ops.cast(keras.ops.sum(extra), total.dtype)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total  # Keras sums the replicas' gradients

    def get_config(self):
        raise NotImplementedError("TrainingModel is not saved; save its student")
