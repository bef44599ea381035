"""The one place that says how pixel values are normalised.

The input pipeline yields images as float32 RGB in [0, 255], NOT normalised. The model
normalises them itself, first thing, with these constants, so that an exported model
takes raw pixels (the phone's camera frame, or an int8 tensor whose quantisation
parameters absorb the normalisation) and nothing outside the model has to repeat it.

The constants are the ImageNet RGB statistics on the 0..255 scale, the convention of
the reference networks' code (SeaFormer, RTFormer, SegFormer via mmsegmentation).
"""

from __future__ import annotations

import numpy as np

MEAN_RGB = (123.675, 116.28, 103.53)
"""Per-channel mean of RGB pixels on the 0..255 scale (ImageNet)."""

STD_RGB = (58.395, 57.12, 57.375)
"""Per-channel standard deviation of RGB pixels on the 0..255 scale (ImageNet)."""


def normalize(image):
    """Normalise RGB pixels in [0, 255]: (image - MEAN_RGB) / STD_RGB over the last axis.

    Works on numpy arrays and on tensors of any backend (plain arithmetic).

    Args:
        image: float array [..., 3], RGB in [0, 255].

    Example:
        >>> import numpy as np
        >>> normalize(np.zeros((1, 3))).round(2).tolist()
        [[-2.12, -2.04, -1.8]]
    """
    mean = np.asarray(MEAN_RGB, np.float32)
    std = np.asarray(STD_RGB, np.float32)
    return (image - mean) / std
