"""FasterSeg's zoomed convolution: a conv run at half resolution, then upsampled back.

Chen, Gong, Liu, Wang, Wang, "FasterSeg: Searching for Faster Real-time Semantic
Segmentation", ICLR 2020. Conventions (NHWC, ``padding="same"``, BN, initialization) as in
`mobileseg.blocks.conv`, whose `ConvBNAct` it runs.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.activations import get_activation
from mobileseg.blocks.conv import ConvBNAct, check_odd_kernel, check_positive_int, check_strides


def zoomed_size(height, width):
    """The half resolution a zoomed conv works at: ``ceil(H / 2) x ceil(W / 2)`` like a stride-2 conv."""
    return (height + 1) // 2, (width + 1) // 2


@keras.saving.register_keras_serializable(package="mobileseg")
class ZoomedConv(keras.layers.Layer):
    """Zoomed convolution: a conv run at half resolution, cheaper with a larger receptive field.

    Paper: "FasterSeg: Searching for Faster Real-time Semantic Segmentation" (Chen, Gong,
    Liu, Zhang, Li and Wang, 2020), the "zoomed convolution" of its search space
    (operator ``conv_downup``). As ``BasicResidual_downup_1x`` in the official code: bilinear
    downsampling by 2, a stride-1 kxk conv + BN, bilinear upsampling back to the input size
    when ``strides == 1`` (for ``strides == 2`` the half-resolution result is the output),
    then the activation. Two deviations, both forced by keras.ops / TFLite: resizing uses
    half-pixel centers (TFLite ``RESIZE_BILINEAR``, ``align_corners=False``; the official
    code uses ``align_corners=True``), and the half size is ``ceil(H / 2)`` (the official
    ``H // 2``) so odd sizes agree with stride-2 convs.

    Args:
        filters: output channels.
        kernel_size: kernel size of the conv (FasterSeg uses 3).
        strides: 1 (output at the input size) or 2 (output at half size).
        activation: activation after the (upsampled) conv-BN.

    Example:
        >>> import numpy as np
        >>> tuple(ZoomedConv(16)(np.zeros((1, 32, 32, 8), "float32")).shape)
        (1, 32, 32, 16)
        >>> tuple(ZoomedConv(16, strides=2)(np.zeros((1, 32, 32, 8), "float32")).shape)
        (1, 16, 16, 16)
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, activation: str = "relu",
                 **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "filters", filters)
        check_odd_kernel(owner, kernel_size)
        check_strides(owner, strides)
        self._activation = get_activation(activation)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.conv = ConvBNAct(filters, kernel_size, activation="none", name="conv", dtype=self.dtype_policy)

    def build(self, input_shape):
        batch, height, width, channels = input_shape
        small = zoomed_size(height, width) if height is not None and width is not None else (None, None)
        self.conv.build((batch, *small, channels))

    def call(self, inputs, training=None):
        height, width = ops.shape(inputs)[1:3]
        x = ops.image.resize(inputs, zoomed_size(height, width), interpolation="bilinear")
        x = self.conv(x, training=training)
        if self.strides == 1:
            x = ops.image.resize(x, (height, width), interpolation="bilinear")
        return self._activation(x)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.strides == 2:
            height = None if height is None else (height + 1) // 2
            width = None if width is None else (width + 1) // 2
        return batch, height, width, self.filters

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      activation=self.activation)
        return config

