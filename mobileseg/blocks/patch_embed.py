"""SegFormer's overlapping patch embedding: a strided conv over overlapping patches, then LayerNorm.

Xie, Wang, Yu, Anandkumar, Alvarez and Luo, "SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers", NeurIPS 2021. Conventions as in
`mobileseg.blocks.conv`; the norm is the int8-only `mobileseg.blocks.layer_norm.LayerNorm`.
"""

from __future__ import annotations

import keras

from mobileseg.blocks.conv import check_odd_kernel, check_positive_int, conv_initializer
from mobileseg.blocks.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="mobileseg")
class OverlapPatchEmbed(keras.layers.Layer):
    """Overlapping patch embedding: a strided conv over overlapping patches, then LayerNorm.

    Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with
    Transformers" (Xie, Wang, Yu, Anandkumar, Alvarez and Luo, 2021), Sec. 3.1 "Overlapped
    Patch Merging". A kxk conv with a bias and stride ``strides`` whose patches overlap,
    then `LayerNorm` (epsilon 1e-5) over the channels; the output stays an NHWC map. The
    official code pads ``kernel_size // 2`` on each side; ``padding="same"`` gives the same
    output size (``ceil(H / strides)``) but, for even strides, puts the extra pad row at the
    bottom.

    Args:
        filters: embedding width.
        kernel_size: patch size (SegFormer: 7 for the first stage, 3 after).
        strides: patch stride (SegFormer: 4 for the first stage, 2 after).

    Example:
        >>> import numpy as np
        >>> tuple(OverlapPatchEmbed(32)(np.zeros((1, 64, 64, 3), "float32")).shape)
        (1, 16, 16, 32)
    """

    def __init__(self, filters: int, kernel_size: int = 7, strides: int = 4, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "filters", filters)
        check_odd_kernel(owner, kernel_size)
        check_positive_int(owner, "strides", strides)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.proj = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                        kernel_initializer=conv_initializer(), name="proj", dtype=self.dtype_policy)
        self.norm = LayerNorm(epsilon=1e-5, name="norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.proj.build(input_shape)
        self.norm.build(self.proj.compute_output_shape(input_shape))

    def call(self, inputs):
        return self.norm(self.proj(inputs))

    def compute_output_shape(self, input_shape):
        return self.proj.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides)
        return config

