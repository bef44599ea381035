"""Class balance of a training split: pixel frequencies and the loss weights that even them out.

Street scenes are dominated by road, sky and buildings; poles, signs, pedestrians and cyclists
cover a few percent of the pixels, and an unweighted loss learns them last. ENet (Paszke et al.,
"ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation", 2016, section 4)
weights each class's pixels by ``1 / ln(c + p_class)`` with ``c = 1.02``: a rare class weighs at most
1 / ln(1.02), about 50, and a class that covers everything about 1.4, so no weight grows without
bound as median-frequency balancing's do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mobileseg.data.source import Pair, SegmentationSource

CLASS_WEIGHTS = ("none", "enet")
"""The weightings `mobileseg.train --class_weight` offers."""

ENET_C = 1.02
"""ENet's constant: the largest weight is 1 / ln(ENET_C)."""


def pixel_frequencies(source: SegmentationSource, pairs: Sequence[Pair]) -> np.ndarray:
    """The share of the labelled pixels of ``pairs`` that each class covers (ignored pixels not counted).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> source = SyntheticSource(4, size=(24, 32))
        >>> frequencies = pixel_frequencies(source, source.pairs("train"))
        >>> frequencies.shape == (source.num_classes,), round(float(frequencies.sum()), 6)
        (True, 1.0)
    """
    counts = np.zeros(source.num_classes, np.int64)
    for pair in pairs:
        _, mask = source.load_pair(pair)
        counts += np.bincount(mask.ravel(), minlength=256)[:source.num_classes]
    if not counts.sum():
        raise ValueError(f"{source.spec}: the {len(pairs)} training masks hold no labelled pixel")
    return counts / counts.sum()


def enet_weights(frequencies: Sequence[float], c: float = ENET_C) -> np.ndarray:
    """ENet's class weights ``1 / ln(c + p)`` for pixel frequencies ``p``.

    Example:
        >>> [round(float(w), 2) for w in enet_weights([0.5, 0.3, 0.01])]
        [2.39, 3.6, 33.83]
    """
    return 1.0 / np.log(c + np.asarray(frequencies, np.float64))


def class_weights(kind: str, source: SegmentationSource, pairs: Sequence[Pair]) -> tuple[float, ...] | None:
    """The per-class loss weights ``kind`` (one of `CLASS_WEIGHTS`) gives on ``pairs``; None for "none"."""
    if kind not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, got {kind!r}")
    if kind == "none":
        return None
    return tuple(round(float(w), 4) for w in enet_weights(pixel_frequencies(source, pairs)))
