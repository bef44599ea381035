"""RTFormer's residual blocks: the single-stream GFA and cross-resolution blocks, and the dual-resolution block.

Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, "RTFormer: Efficient Design for Real-Time
Semantic Segmentation with Transformer", NeurIPS 2022 (Sec. 3.1-3.3, Fig. 2), as in the
official PaddleSeg code (``paddleseg/models/rtformer.py``: ``EABlock``). Their attentions and
FFN are `mobileseg.blocks.gfa_attention`.

How the official ``EABlock`` maps to the blocks here:

- ``GFABlock`` is the low-resolution half of ``EABlock`` (optional strided shortcut,
  ``x + GFA(x)``, ``x + FFN(x)``), usable alone as a single-stream block.
- ``CrossResolutionBlock`` is the high-resolution half: cross-resolution attention and FFN,
  each residual.
- ``RTFormerBlock`` is the whole ``EABlock``: takes ``[high, low]`` and returns
  ``[high, low]``: low branch (``GFABlock``), compression of the low branch into the
  high one, cross-resolution attention + FFN on the high branch, and the strided
  down path that adds the high branch back into the low one.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.batch_norm import batch_norm
from mobileseg.blocks.conv import check_positive_int, conv_initializer, drop_path_layer
from mobileseg.blocks.gfa_attention import CrossResolutionAttention, GFAttention, RTFormerFFN


@keras.saving.register_keras_serializable(package="mobileseg")
class GFABlock(keras.layers.Layer):
    """RTFormer's low-resolution transformer block (Wang et al., NeurIPS 2022, Fig. 2, low half of ``EABlock``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    ``shortcut(x) + GFAttention(x)`` then ``x + RTFormerFFN(x)``. The shortcut is the
    identity, or BN + bias-free strided 1x1 conv when the width or resolution changes
    (official ``attn_shortcut_l``).

    Args:
        dim: output channels.
        num_heads: groups of the GFA double normalization.
        memory_units: GFA key/value vectors (default ``dim``, as official).
        strides: 1, or 2 to halve the resolution (official: where the width grows).
        drop_path: stochastic depth rate of both residual branches (training only).

    Example:
        >>> import numpy as np
        >>> block = GFABlock(32, num_heads=4, strides=2)
        >>> tuple(block(np.zeros((1, 8, 8, 16), "float32")).shape)
        (1, 4, 4, 32)
    """

    def __init__(self, dim: int, num_heads: int = 8, memory_units: int | None = None, strides: int = 1,
                 drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.num_heads = num_heads
        self.memory_units = memory_units
        self.strides = strides
        self.drop_path = drop_path
        self.attn = GFAttention(dim, num_heads=num_heads, memory_units=memory_units, strides=strides, name="attn",
                                dtype=self.dtype_policy)
        self.mlp = RTFormerFFN(dim, name="mlp", dtype=self.dtype_policy)
        self.drop_attn = drop_path_layer(drop_path, "drop_path_attn", dtype=self.dtype_policy)
        self.drop_mlp = drop_path_layer(drop_path, "drop_path_mlp", dtype=self.dtype_policy)
        self.shortcut_norm = None
        self.shortcut_conv = None

    def build(self, input_shape):
        if input_shape[-1] != self.dim or self.strides != 1:
            self.shortcut_norm = batch_norm("shortcut_norm", dtype=self.dtype_policy)
            self.shortcut_conv = keras.layers.Conv2D(self.dim, 1, strides=self.strides, use_bias=False,
                                                     kernel_initializer=conv_initializer(), name="shortcut_conv",
                                                     dtype=self.dtype_policy)
            self.shortcut_norm.build(input_shape)
            self.shortcut_conv.build(input_shape)
        self.attn.build(input_shape)
        self.mlp.build(self.attn.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_conv(self.shortcut_norm(inputs, training=training))
        branch = self.attn(inputs, training=training)
        branch = self.drop_attn(branch, training=training)
        x = shortcut + branch
        branch = self.mlp(x, training=training)
        branch = self.drop_mlp(branch, training=training)
        return x + branch

    def compute_output_shape(self, input_shape):
        return self.attn.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, memory_units=self.memory_units,
                      strides=self.strides, drop_path=self.drop_path)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class CrossResolutionBlock(keras.layers.Layer):
    """RTFormer's high-resolution transformer step (Wang et al., NeurIPS 2022, Fig. 2, high half of ``EABlock``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    Called on ``[x, context]``: ``x + CrossResolutionAttention([x, context])`` then
    ``x + RTFormerFFN(x)``. This is the ``cross_attention`` cell of a genotype, whose
    ``context`` is any lower-resolution branch.

    Args:
        dim: channels of ``x`` and of the output.
        context_size: side of the pooled context grid (official: 12).
        drop_path: stochastic depth rate of both residual branches (training only).

    Example:
        >>> import numpy as np
        >>> block = CrossResolutionBlock(16, context_size=2)
        >>> tuple(block([np.zeros((1, 8, 8, 16), "float32"), np.zeros((1, 2, 2, 32), "float32")]).shape)
        (1, 8, 8, 16)
    """

    def __init__(self, dim: int, context_size: int = 12, drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.context_size = context_size
        self.drop_path = drop_path
        self.cross_attn = CrossResolutionAttention(dim, context_size=context_size, name="cross_attn",
                                                   dtype=self.dtype_policy)
        self.mlp = RTFormerFFN(dim, name="mlp", dtype=self.dtype_policy)
        self.drop_attn = drop_path_layer(drop_path, "drop_path_attn", dtype=self.dtype_policy)
        self.drop_mlp = drop_path_layer(drop_path, "drop_path_mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.cross_attn.build(input_shape)
        self.mlp.build(input_shape[0])

    def call(self, inputs, training=None):
        x, context = inputs
        branch = self.cross_attn([x, context], training=training)
        branch = self.drop_attn(branch, training=training)
        x = x + branch
        branch = self.mlp(x, training=training)
        branch = self.drop_mlp(branch, training=training)
        return x + branch

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, context_size=self.context_size, drop_path=self.drop_path)
        return config


def _norm_relu_conv(filters: int, kernel_size: int, strides: int, name: str, dtype=None) -> keras.Sequential:
    """RTFormer's pre-activation unit: BN, ReLU, bias-free conv (``dtype``: the owner's policy)."""
    return keras.Sequential([
        batch_norm(f"{name}_norm", dtype=dtype),
        keras.layers.ReLU(name=f"{name}_relu", dtype=dtype),
        keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                            kernel_initializer=conv_initializer(), name=f"{name}_conv", dtype=dtype),
    ], name=name)


@keras.saving.register_keras_serializable(package="mobileseg")
class RTFormerBlock(keras.layers.Layer):
    """RTFormer's dual-resolution block (Wang et al., NeurIPS 2022, Fig. 2, official ``EABlock``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    Called on ``[high, low]``, returns ``[high, low]``:

    1. ``low = GFABlock(low)`` (strided when ``low_strides == 2``);
    2. ``high += resize(compression(low))``, compression = BN, ReLU, 1x1 conv to ``dim``,
       bilinear resize to the high resolution;
    3. ``high = CrossResolutionBlock([high, low])`` (cross-resolution attention + FFN, residual);
    4. with ``has_down``: ``low += down(high)``, down = BN, ReLU, 3x3 stride-2 conv to
       ``low_dim // 2``, BN, ReLU, 3x3 stride-2 conv to ``low_dim`` (so the low branch
       must be at a quarter of the high resolution after step 1).

    Convs use ``padding="same"`` (the official pads 1 on each side: for even sizes the
    stride-2 sampling grid is shifted by one pixel).

    Args:
        dim: channels of the high-resolution branch (input and output).
        low_dim: output channels of the low-resolution branch.
        num_heads: groups of the low branch's GFA double normalization.
        low_strides: 2 halves the low branch in step 1 (official: the first block,
            where the low width doubles), else 1.
        context_size: pooled context side of the cross-resolution attention.
        has_down: add the high branch back into the low one (step 4).
        drop_path: stochastic depth rate of the four residual branches (training only).

    Example:
        >>> import numpy as np
        >>> block = RTFormerBlock(16, low_dim=32, num_heads=4, low_strides=2, context_size=2)
        >>> high, low = block([np.zeros((1, 16, 16, 16), "float32"), np.zeros((1, 8, 8, 24), "float32")])
        >>> tuple(high.shape), tuple(low.shape)
        ((1, 16, 16, 16), (1, 4, 4, 32))
    """

    def __init__(self, dim: int, low_dim: int, num_heads: int = 8, low_strides: int = 1,
                 context_size: int = 12, has_down: bool = True, drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "dim", dim)
        check_positive_int(type(self).__name__, "low_dim", low_dim)
        if has_down and low_dim < 2:
            raise ValueError(f"{type(self).__name__}: low_dim must be at least 2 with has_down, got {low_dim}")
        self.dim = dim
        self.low_dim = low_dim
        self.num_heads = num_heads
        self.low_strides = low_strides
        self.context_size = context_size
        self.has_down = has_down
        self.drop_path = drop_path
        self.low_block = GFABlock(low_dim, num_heads=num_heads, strides=low_strides, drop_path=drop_path,
                                  name="low_block", dtype=self.dtype_policy)
        self.compression = _norm_relu_conv(dim, 1, 1, "compression", dtype=self.dtype_policy)
        self.high_block = CrossResolutionBlock(dim, context_size=context_size, drop_path=drop_path,
                                               name="high_block", dtype=self.dtype_policy)
        self.down = keras.Sequential([_norm_relu_conv(low_dim // 2, 3, 2, "down1", dtype=self.dtype_policy),
                                      _norm_relu_conv(low_dim, 3, 2, "down2",
                                                      dtype=self.dtype_policy)], name="down") if has_down else None

    def build(self, input_shape):
        high_shape, low_shape = input_shape
        if high_shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: dim={self.dim} but the high branch has "
                             f"{high_shape[-1]} channels")
        self.low_block.build(low_shape)
        low_out = self.low_block.compute_output_shape(low_shape)
        if self.has_down:
            expected = tuple(-(-size // 4) for size in high_shape[1:3])
            if tuple(low_out[1:3]) != expected:
                raise ValueError(f"{type(self).__name__}: the low branch is {tuple(low_out[1:3])} after its "
                                 f"block but the down path makes {expected} from the high branch "
                                 f"{tuple(high_shape[1:3])}")
            self.down.build(high_shape)
        self.compression.build(low_out)
        self.high_block.build([high_shape, low_out])

    def call(self, inputs, training=None):
        high, low = inputs
        low = self.low_block(low, training=training)
        height, width = high.shape[1], high.shape[2]
        high = high + ops.image.resize(self.compression(low, training=training), (height, width),
                                       interpolation="bilinear")
        high = self.high_block([high, low], training=training)
        if self.down is not None:
            low = low + self.down(high, training=training)
        return [high, low]

    def compute_output_shape(self, input_shape):
        high_shape, low_shape = input_shape
        return [tuple(high_shape), tuple(self.low_block.compute_output_shape(low_shape))]

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, low_dim=self.low_dim, num_heads=self.num_heads, low_strides=self.low_strides,
                      context_size=self.context_size, has_down=self.has_down, drop_path=self.drop_path)
        return config


