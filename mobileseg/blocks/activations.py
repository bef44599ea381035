"""Activation names shared by every block, each one a TFLite builtin op.

The genotype names activations by string; this module is the one place that maps
a name to a function, so the set of legal names is checked in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

ACTIVATIONS: dict[str, Callable | None] = {
    "relu": keras.activations.relu,
    "relu6": keras.activations.relu6,
    "hard_swish": keras.activations.hard_swish,
    "gelu": keras.activations.gelu,
    "sigmoid": keras.activations.sigmoid,
    "none": None,
}


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
