"""Batch normalization whose training step runs TensorFlow's fused kernel.

Paper: "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift" (Ioffe and Szegedy, ICML 2015).

Keras 3's ``BatchNormalization`` computes the batch moments and the normalization as
separate element-wise ops (``Mean``, ``SquaredDifference``, ``Mul``, ``AddN``, and more
in the gradient). TensorFlow's fused kernel (``FusedBatchNormV3`` and its gradient, run
by oneDNN on this CPU) does the same in one pass: in a MobileNetV3-Small training step at
360x480 it takes 13 % less time (see ``benchmarks/train_speed.py``). `BatchNorm` is a
``BatchNormalization`` that calls it for 4-D channel-last inputs in training; everything
else (inference, masks, renormalization, synchronized statistics, other ranks) is Keras'
own code, so exported and evaluated models compute exactly what a Keras layer would.
One difference while training: the running variance is updated with the unbiased batch
variance (n / (n - 1) times the biased one, as PyTorch does), where Keras uses the biased
one; with n = batch x height x width pixels this is a relative change below 1e-3.

Conventions: PyTorch's defaults (``epsilon=1e-5``, running averages updated by 0.1 per
step), the convention of every reference implementation (SeaFormer, SegFormer,
torchvision's MobileNetV3), so their weights transfer.
"""

from __future__ import annotations

import keras
import tensorflow as tf

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras' running-average weight; PyTorch's momentum=0.1


@keras.saving.register_keras_serializable(package="mobileseg")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the fused TensorFlow kernel in training.

    Takes the arguments of ``keras.layers.BatchNormalization``; its weights, config and
    inference are that layer's.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (4, 5, 6, 8)).astype("float32")
        >>> fused, plain = BatchNorm(epsilon=1e-5), keras.layers.BatchNormalization(epsilon=1e-5)
        >>> bool(np.allclose(fused(x, training=True), plain(x, training=True), atol=1e-4))
        True
        >>> bool(np.allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5))
        True
    """

    def _fused(self, inputs, training, mask) -> bool:
        return (bool(training) and self.trainable and mask is None and not self.renorm and not self.synchronized
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and keras.backend.backend() == "tensorflow")

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        # The kernel takes float16/bfloat16 or float32 images with float32 statistics and computes them in float32.
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=True,
            exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(tf.cast(mean, self.moving_mean.dtype))
        self.moving_variance.assign(tf.cast(variance, self.moving_variance.dtype))
        return tf.cast(outputs, self.compute_dtype)


def batch_norm(name: str = "bn", epsilon: float = BN_EPSILON, dtype=None) -> BatchNorm:
    """A `BatchNorm` over channels with the references' epsilon and momentum (``dtype``: its owner's policy)."""
    return BatchNorm(epsilon=epsilon, momentum=BN_MOMENTUM, name=name, dtype=dtype)
