"""Weight EMA: the exponential moving average of the trained weights, validated and shipped instead of them.

Polyak averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992) as modern classifiers and
segmenters train with it (the "model EMA" of EfficientNet, Tan & Le, ICML 2019, and of timm): after
optimizer step ``t`` (from 0), ``average = d * average + (1 - d) * weight`` with
``d = min(decay, (1 + t) / (10 + t))`` (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``);
the average starts at the first step's weights. Without that warm-up a run of a few thousand steps
validates an average still weighted by its first steps' near-random weights: measured on CamVid,
mobilenetv3_small_lraspp's val mIoU at epoch 30 of 120 (1350 steps, decay 0.999, 26% of the average
still the first step's weights) was 17% against 53% for the trained weights. The averages are
optimizer variables (Keras' ``use_ema``), so ``last.keras`` stores them and a resumed run continues
the same average.

`averaged_weights` puts the averages into the model for a block (validation, saving ``model.keras``)
and then puts the trained weights back bit for bit: the training goes on from its own weights, and a
resumed run computes what an uninterrupted one would. Keras' ``fit`` ends by overwriting the weights
with their averages; `mobileseg.training.trainer.fit` calls it once per epoch, so its optimizer is an
`AveragingAdamW`, which leaves them. Only trainable variables are averaged (Keras' rule); BatchNorm's
moving statistics stay those of the trained weights.
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops


@keras.saving.register_keras_serializable("mobileseg")
class AveragingAdamW(keras.optimizers.AdamW):
    """AdamW keeping the weights' moving average (``use_ema``, with the warm-up of the module docstring)
    without ever writing it into the weights.

    Example:
        >>> import numpy as np
        >>> weight = keras.Variable(np.zeros(2, "float32"))
        >>> optimizer = AveragingAdamW(0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5)
        >>> optimizer.build([weight])
        >>> for _ in range(3):  # weights -0.1, -0.2, -0.3; decays 0, 2/11, 3/12 (the warm-up, under 0.5)
        ...     optimizer.apply([np.ones(2, "float32")], [weight])
        >>> print(optimizer._model_variables_moving_average[0].numpy().round(4))  # -0.1, -0.1818, -0.2705
        [-0.2705 -0.2705]
        >>> optimizer.finalize_variable_values([weight])  # Keras' fit calls it at its end
        >>> print(weight.numpy().round(4))  # the trained weights, not their average
        [-0.3 -0.3]
    """

    def finalize_variable_values(self, var_list):
        """Nothing: the trained weights stay; `averaged_weights` lends the averages where they are used."""

    def _update_model_variables_moving_average(self, trainable_variables):
        """One step of the average, after the step's update (Keras calls it before counting the step)."""
        step = ops.cast(self.iterations, "float32")
        decay = ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step)) * ops.cast(step > 0, "float32")
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            d = ops.cast(decay, variable.dtype)
            average.assign(d * average + (1 - d) * variable)


@contextlib.contextmanager
def averaged_weights(optimizer: keras.optimizers.Optimizer):
    """The optimizer's weight averages in its trainable variables for the block, the trained weights after it.

    A no-op for an optimizer without ``use_ema``.

    Example:
        >>> import numpy as np
        >>> weight = keras.Variable(np.zeros(2, "float32"))
        >>> optimizer = keras.optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5)
        >>> optimizer.build([weight])
        >>> for _ in range(2):
        ...     optimizer.apply([np.ones(2, "float32")], [weight])
        >>> with averaged_weights(optimizer):  # steps: [-1, -1] (the start), then [-2, -2]: 0.5 * -1 + 0.5 * -2
        ...     print(weight.numpy())
        [-1.5 -1.5]
        >>> print(weight.numpy())
        [-2. -2.]
    """
    if not getattr(optimizer, "use_ema", False):
        yield
        return
    variables = list(optimizer._trainable_variables)
    averages = list(optimizer._model_variables_moving_average)
    trained = [variable.numpy() for variable in variables]
    for variable, average in zip(variables, averages):
        variable.assign(average)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)
