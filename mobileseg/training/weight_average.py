"""Weight EMA: the exponential moving average of the trained weights, validated and shipped instead of them.

Polyak averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992) as modern classifiers and
segmenters train with it (the "model EMA" of EfficientNet, Tan & Le, ICML 2019, and of timm): after
every optimizer step ``average = decay * average + (1 - decay) * weight``; the average starts at the
first step's weights. Keras' optimizers keep it (``use_ema=True``, ``ema_momentum=decay``), as
optimizer variables, so ``last.keras`` stores it and a resumed run continues the same average.

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


@keras.saving.register_keras_serializable("mobileseg")
class AveragingAdamW(keras.optimizers.AdamW):
    """AdamW keeping the weights' moving average (``use_ema``) without ever writing it into the weights.

    Example:
        >>> import numpy as np
        >>> weight = keras.Variable(np.zeros(2, "float32"))
        >>> optimizer = AveragingAdamW(0.1, weight_decay=0.0, use_ema=True, ema_momentum=0.5)
        >>> optimizer.build([weight])
        >>> optimizer.apply([np.ones(2, "float32")], [weight])
        >>> optimizer.apply([np.ones(2, "float32")], [weight])
        >>> optimizer.finalize_variable_values([weight])  # Keras' fit calls it at its end
        >>> print(weight.numpy().round(4))  # the trained weights, not their average (-0.15)
        [-0.2 -0.2]
    """

    def finalize_variable_values(self, var_list):
        """Nothing: the trained weights stay; `averaged_weights` lends the averages where they are used."""


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
