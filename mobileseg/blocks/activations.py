"""Activation names shared by every block, each one a TFLite builtin op, and the attention softmax.

The genotype names activations by string; this module is the one place that maps
a name to a function, so the set of legal names is checked in one place.
`softmax_float32` is the softmax every attention block uses: in float32 under any
dtype policy (a float16 softmax over many tokens loses its small weights).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

ACTIVATIONS: dict[str, Callable | None] = {
    "relu": keras.activations.relu,
    "relu6": keras.activations.relu6,
    "hard_swish": keras.activations.hard_swish,
    "gelu": keras.activations.gelu,
    "sigmoid": keras.activations.sigmoid,
    "none": None,
}


def softmax_float32(logits, axis: int = -1):
    """Softmax computed in float32 whatever the logits' dtype, returned in that dtype.

    Under a float32 policy the casts are no-ops (the TFLite graph is unchanged).

    Example:
        >>> import numpy as np
        >>> out = softmax_float32(keras.ops.cast(np.array([[0.0, 20.0, -20.0]]), "float16"))
        >>> keras.backend.standardize_dtype(out.dtype), np.round(np.asarray(out, "float32"), 3).tolist()
        ('float16', [[0.0, 1.0, 0.0]])
    """
    return ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=axis), logits.dtype)


def get_activation(name: str) -> Callable:
    """The activation function for ``name`` (identity for ``"none"``).

    Args:
        name: one of ``ACTIVATIONS``.

    Raises:
        ValueError: the name is not known; the message lists the known ones.

    Example:
        >>> import numpy as np
        >>> float(get_activation("relu6")(np.float32(9.0)))
        6.0
        >>> get_activation("swishy")
        Traceback (most recent call last):
        ...
        ValueError: unknown activation 'swishy'; expected one of relu, relu6, hard_swish, gelu, sigmoid, none
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    function = ACTIVATIONS[name]
    return function if function is not None else (lambda x: x)
