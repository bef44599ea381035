"""HyCTAS's memory-efficient self-attention cell.

Yu, Wan, Liu, Chen, Xiao, Dai, "Real-Time Image Segmentation via Hybrid
Convolutional-Transformer Architecture Search" (HyCTAS), arXiv 2403.10413, 2024, as in
the official code (MarvinYu1995/HyCTAS ``train/operations.py``: the searchable op
``"sa"`` = ``Self_Attn`` with its attention ``ATT``, and the heads' ``SAHead``).

The official attention is a SAGAN-style self-attention: 1x1 convs (with biases) make
queries and keys of only ``C / 8`` channels and values of ``C``; the logits are the raw
dot products (no ``1 / sqrt(d)``); ``gamma * attention + x`` with a learnable scalar
``gamma`` starting at 0. The cell wraps it in a residual bottleneck. There is no
feed-forward network in the official cell.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.batch_norm import batch_norm
from mobileseg.blocks.conv import ConvBNAct, check_positive_int, check_strides
from mobileseg.blocks.zoomed_conv import zoomed_size


@keras.saving.register_keras_serializable(package="mobileseg")
class MemoryEfficientMHSA(keras.layers.Layer):
    """Memory-efficient self-attention cell of HyCTAS (Yu et al., arXiv 2403.10413, 2024, op "sa").

    Paper: "Real-Time Image Segmentation via Hybrid Convolutional-Transformer Architecture
    Search" (HyCTAS), Yu, Wan, Liu, Chen, Xiao, Dai, arXiv 2403.10413, 2024.

    As the official ``Self_Attn``: ``shortcut(x)`` (identity, or conv-BN-ReLU: 1x1, or
    3x3 stride 2 when ``strides == 2``) plus ``net3(net2(net1(x)))`` then ReLU, where
    net1 = 1x1 conv-BN-ReLU to ``dim``; net2 = attention, 2x2 average pool when
    ``strides == 2``, BN, ReLU; net3 = 1x1 conv-BN with the BN scale starting at 0.

    "Memory-efficient" concretely: queries and keys have ``num_heads * key_dim``
    channels, by default ``dim / 8``, so the N x N logits are computed from 8x narrower
    tensors than the values; and with ``attention_stride=2`` (the official ``SAHead``
    used in HyCTAS's heads) the attention runs on a bilinearly half-sized map (N / 4
    tokens, a 16x smaller attention matrix) and its output is resized back (that
    variant needs ``strides == 1``). ``num_heads > 1`` splits queries, keys and values
    into heads (the official cell has one head).

    Args:
        dim: output channels.
        num_heads: attention heads (official: 1); must divide ``dim``.
        key_dim: query/key channels per head; default ``dim // (8 * num_heads)`` (at least 1).
        strides: 1, or 2 to halve the resolution.
        attention_stride: 1 (the searchable cell) or 2 (attention at half resolution).

    Example:
        >>> import numpy as np
        >>> layer = MemoryEfficientMHSA(32, strides=2)
        >>> tuple(layer(np.zeros((1, 16, 16, 16), "float32")).shape), layer.key_channels
        ((1, 8, 8, 32), 4)
    """

    def __init__(self, dim: int, num_heads: int = 1, key_dim: int | None = None, strides: int = 1,
                 attention_stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "num_heads", num_heads)
        if key_dim is not None:
            check_positive_int(owner, "key_dim", key_dim)
        if dim % num_heads:
            raise ValueError(f"{owner}: dim={dim} is not divisible by num_heads={num_heads}")
        check_strides(owner, strides)
        if attention_stride not in (1, 2):
            raise ValueError(f"{owner}: attention_stride must be 1 or 2, got {attention_stride!r}")
        if strides == 2 and attention_stride == 2:
            raise ValueError(f"{owner}: attention_stride=2 (official SAHead) needs strides=1")
        self.dim = dim
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.strides = strides
        self.attention_stride = attention_stride
        self.head_key_dim = key_dim or max(1, dim // (8 * num_heads))
        self.key_channels = self.head_key_dim * num_heads
        self.head_value_dim = dim // num_heads
        self.net1 = ConvBNAct(dim, 1, activation="relu", name="net1", dtype=self.dtype_policy)
        self.query = keras.layers.Conv2D(self.key_channels, 1, name="query", dtype=self.dtype_policy)
        self.key = keras.layers.Conv2D(self.key_channels, 1, name="key", dtype=self.dtype_policy)
        self.value = keras.layers.Conv2D(dim, 1, name="value", dtype=self.dtype_policy)
        self.attention_norm = batch_norm("attention_norm", dtype=self.dtype_policy)
        self.net3 = ConvBNAct(dim, 1, activation="none", name="net3", dtype=self.dtype_policy)
        self.shortcut = None
        self.gamma = None

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if height is None or width is None:
            raise ValueError(f"{type(self).__name__} needs a static height and width, got {input_shape}")
        if channels != self.dim or self.strides == 2:
            kernel = 3 if self.strides == 2 else 1
            self.shortcut = ConvBNAct(self.dim, kernel, strides=self.strides, activation="relu", name="shortcut",
                                      dtype=self.dtype_policy)
            self.shortcut.build(input_shape)
        self.net1.build(input_shape)
        size = zoomed_size(height, width) if self.attention_stride == 2 else (height, width)
        attention_input = (None, *size, self.dim)
        for conv in (self.query, self.key, self.value):
            conv.build(attention_input)
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")
        self.attention_norm.build(attention_input)
        self.net3.build((None, None, None, self.dim))
        self.net3.bn.gamma.assign(ops.zeros_like(self.net3.bn.gamma))

    def _attention(self, x):
        height, width = x.shape[1], x.shape[2]
        tokens = height * width

        def heads(t, depth):
            return ops.transpose(ops.reshape(t, (-1, tokens, self.num_heads, depth)), (0, 2, 1, 3))

        q = heads(self.query(x), self.head_key_dim)
        k = heads(self.key(x), self.head_key_dim)
        v = heads(self.value(x), self.head_value_dim)
        attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))))
        out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
        return self.gamma * ops.reshape(out, (-1, height, width, self.dim)) + x

    def call(self, inputs, training=None):
        height, width = inputs.shape[1], inputs.shape[2]
        shortcut = inputs if self.shortcut is None else self.shortcut(inputs, training=training)
        x = self.net1(inputs, training=training)
        if self.attention_stride == 2:
            x = ops.image.resize(x, zoomed_size(height, width), interpolation="bilinear")
        x = self._attention(x)
        if self.strides == 2:
            x = ops.average_pool(x, 2, strides=2, padding="same")
        x = ops.relu(self.attention_norm(x, training=training))
        if self.attention_stride == 2:
            x = ops.image.resize(x, (height, width), interpolation="bilinear")
        x = self.net3(x, training=training)
        return ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.strides == 2:
            height = None if height is None else (height + 1) // 2
            width = None if width is None else (width + 1) // 2
        return batch, height, width, self.dim

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, key_dim=self.key_dim, strides=self.strides,
                      attention_stride=self.attention_stride)
        return config
