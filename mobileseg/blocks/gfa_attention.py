"""RTFormer's GPU-friendly attention, cross-resolution attention and feed-forward network.

Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, "RTFormer: Efficient Design for Real-Time
Semantic Segmentation with Transformer", NeurIPS 2022 (Sec. 3.1-3.3), as in the
official PaddleSeg code (``paddleseg/models/rtformer.py``: ``ExternalAttention``,
``MLP``, ``EABlock``).

How the official ``EABlock`` maps to the layers here:

- ``GFAttention`` is ``ExternalAttention`` without cross keys/values (``attn_l``): BN,
  learnable key memory (1x1 conv), grouped double normalization, value memory.
- ``CrossResolutionAttention`` is ``ExternalAttention`` with cross keys/values
  (``attn_h``) together with ``EABlock.cross_kv``, the only consumer of the keys and
  values it makes from the low-resolution map.
- ``RTFormerFFN`` is ``MLP``.

The residual blocks made of them (``GFABlock``, ``CrossResolutionBlock`` and the whole
``EABlock``, ``RTFormerBlock``) are in `mobileseg.blocks.rtformer_blocks`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.batch_norm import batch_norm
from mobileseg.blocks.conv import check_positive_int, check_strides, conv_initializer

FFN_BN_EPSILON = 1e-6  # the official MLP's BatchNorm epsilon


def memory_initializer() -> keras.initializers.Initializer:
    """The official initialization of the key and value memories: normal, std 0.001."""
    return keras.initializers.RandomNormal(stddev=0.001)


def grouped_double_normalization(logits, num_heads: int, epsilon: float = 1e-6):
    """RTFormer's grouped double normalization of ``(B, N, M)`` logits over N tokens and M units.

    The official code takes a softmax over the tokens, then divides by the sum over
    the units of each of ``num_heads`` groups plus ``epsilon``. Written out, that is a
    softmax over the units of each group of ``logits - logsumexp_over_tokens(logits)``
    with one extra unit of constant logit ``log(epsilon)`` (dropped afterwards), which is
    what is computed here, exactly. Every intermediate stays in a range int8 holds,
    where the literal token softmax of a large map has values near ``1 / N`` that int8
    (fixed scale 1/256) rounds to zero. The extra unit is concatenated, not padded: XNNPACK
    has no kernel for a PADV2 with a non-zero constant, and does take the concatenation (the
    int8 export runs the LOG in float, `mobileseg.deploy.xnnpack_int8.FLOAT_ONLY_OPS`).

    Example:
        >>> import numpy as np
        >>> logits = np.random.default_rng(0).normal(size=(1, 6, 4)).astype("float32")
        >>> x = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        >>> x = x.reshape(1, 6, 2, 2)
        >>> want = (x / (x.sum(axis=-1, keepdims=True) + 1e-6)).reshape(1, 6, 4)
        >>> got = np.asarray(grouped_double_normalization(logits, num_heads=2))
        >>> bool(np.allclose(got, want, atol=1e-6))
        True
    """
    tokens, units = logits.shape[1], logits.shape[2]
    dtype, logits = logits.dtype, ops.cast(logits, "float32")  # exp and log in float32 under any policy
    peak = ops.max(logits, axis=1, keepdims=True)
    log_total = ops.log(ops.sum(ops.exp(logits - peak), axis=1, keepdims=True)) + peak
    grouped = ops.reshape(logits - log_total, (-1, tokens, num_heads, units // num_heads))
    extra = ops.zeros_like(grouped[..., :1]) + float(np.log(epsilon))
    grouped = ops.concatenate([grouped, extra], axis=-1)
    return ops.cast(ops.reshape(ops.softmax(grouped, axis=-1)[..., :-1], (-1, tokens, units)), dtype)


def adaptive_max_pool(inputs, size: int):
    """``AdaptiveMaxPool2D((size, size))`` of PyTorch/Paddle on a static NHWC map, with builtin ops.

    Bin ``i`` of an axis of length ``L`` covers ``floor(i L / size) .. ceil((i + 1) L / size)``.
    A map divisible by ``size`` uses one max pool; otherwise each axis takes the max of every
    bin's slice and concatenates the bins (`concatenate_tree`): ops XNNPACK runs, where a
    GATHER of the bins' rows would leave the delegate.

    Example:
        >>> import numpy as np
        >>> x = np.arange(5, dtype="float32").reshape(1, 5, 1, 1)
        >>> np.asarray(adaptive_max_pool(x, 3))[0, :, 0, 0].tolist()
        [1.0, 3.0, 4.0]
    """
    height, width = inputs.shape[1], inputs.shape[2]
    if height % size == 0 and width % size == 0:
        pool = (height // size, width // size)
        return ops.max_pool(inputs, pool, strides=pool, padding="valid")
    x = inputs
    for axis, length in ((1, height), (2, width)):
        bins = [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]
        cut = (lambda start, end: x[:, start:end]) if axis == 1 else (lambda start, end: x[:, :, start:end])
        x = concatenate_tree([ops.max(cut(start, end), axis=axis, keepdims=True) for start, end in bins], axis)
    return x


CONCAT_INPUTS = 4
"""The most inputs of one CONCATENATION that XNNPACK delegates, measured with ai-edge-litert 2.3
(fp32 and int8: 4 inputs run in the delegate, 6 and 12 fall back to the built-in kernel)."""


def concatenate_tree(parts: list, axis: int):
    """``ops.concatenate(parts, axis)`` as a tree of concatenations of at most `CONCAT_INPUTS` each.

    Example:
        >>> import numpy as np
        >>> parts = [np.full((1, 1), i, "float32") for i in range(6)]
        >>> np.asarray(concatenate_tree(parts, axis=1)).tolist()
        [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    """
    while len(parts) > 1:
        parts = [ops.concatenate(parts[i:i + CONCAT_INPUTS], axis=axis) if len(parts[i:i + CONCAT_INPUTS]) > 1
                 else parts[i] for i in range(0, len(parts), CONCAT_INPUTS)]
    return parts[0]


@keras.saving.register_keras_serializable(package="mobileseg")
class GFAttention(keras.layers.Layer):
    """GPU-friendly attention of RTFormer (Wang et al., NeurIPS 2022, Sec. 3.2, official ``ExternalAttention``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    External attention with learnable memories instead of token keys and values: BN on
    the input, logits against ``memory_units`` key vectors (a bias-free 1x1 conv, stride
    ``strides``), grouped double normalization (softmax over the tokens, then each of
    ``num_heads`` groups of units normalized to sum to one per token), and a bias-free
    1x1 conv with the value memory to ``dim`` channels. Its cost is linear in the tokens.

    Args:
        dim: output channels.
        num_heads: groups of the double normalization (must divide ``memory_units``).
        memory_units: learnable key/value vectors (official: ``dim`` in the low branch).
        strides: stride of the key conv; the official block uses 2 where the low
            branch widens (its input channels differ from ``dim``).

    Example:
        >>> import numpy as np
        >>> layer = GFAttention(32, num_heads=4, strides=2)
        >>> tuple(layer(np.zeros((1, 8, 8, 16), "float32")).shape)
        (1, 4, 4, 32)
    """

    def __init__(self, dim: int, num_heads: int = 8, memory_units: int | None = None, strides: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "num_heads", num_heads)
        if memory_units is not None:
            check_positive_int(owner, "memory_units", memory_units)
        check_strides(owner, strides)
        units = memory_units or dim
        if units % num_heads:
            raise ValueError(f"{owner}: memory_units={units} is not divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.memory_units = memory_units
        self.strides = strides
        self.units = units
        self.norm = batch_norm("norm", dtype=self.dtype_policy)
        self.key_memory = keras.layers.Conv2D(units, 1, strides=strides, use_bias=False,
                                              kernel_initializer=memory_initializer(), name="key_memory",
                                              dtype=self.dtype_policy)
        self.value_memory = keras.layers.Conv2D(dim, 1, use_bias=False, kernel_initializer=memory_initializer(),
                                                name="value_memory", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.key_memory.build(input_shape)
        self.value_memory.build((*self.key_memory.compute_output_shape(input_shape)[:-1], self.units))

    def call(self, inputs, training=None):
        x = self.key_memory(self.norm(inputs, training=training))
        height, width = x.shape[1], x.shape[2]
        weights = grouped_double_normalization(ops.reshape(x, (-1, height * width, self.units)), self.num_heads)
        return self.value_memory(ops.reshape(weights, (-1, height, width, self.units)))

    def compute_output_shape(self, input_shape):
        return (*self.key_memory.compute_output_shape(input_shape)[:-1], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, memory_units=self.memory_units,
                      strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class CrossResolutionAttention(keras.layers.Layer):
    """Cross-resolution attention of RTFormer (Wang et al., NeurIPS 2022, Sec. 3.3, official ``attn_h`` + ``cross_kv``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    Called on ``[x, context]``: the high-resolution tokens ``x`` (``dim`` channels) query
    ``context_size ** 2`` keys and values made from the low-resolution ``context``:
    BN, adaptive max pool to ``context_size x context_size``, a bias-free 1x1 conv to
    ``2 * dim`` channels split into keys (first half) and values. The queries are the
    BN-normalized ``x``; the attention is a single-head softmax over the keys, scaled by
    ``(number of keys) ** -0.5 = 1 / context_size`` as officially (not by the channels).

    Args:
        dim: channels of ``x`` and of the output.
        context_size: side of the pooled context grid (official: 12, so 144 keys).

    Example:
        >>> import numpy as np
        >>> layer = CrossResolutionAttention(16, context_size=2)
        >>> x, context = np.zeros((1, 8, 8, 16), "float32"), np.zeros((1, 4, 4, 32), "float32")
        >>> tuple(layer([x, context]).shape)
        (1, 8, 8, 16)
    """

    def __init__(self, dim: int, context_size: int = 12, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "context_size", context_size)
        self.dim = dim
        self.context_size = context_size
        self.norm = batch_norm("norm", dtype=self.dtype_policy)
        self.context_norm = batch_norm("context_norm", dtype=self.dtype_policy)
        self.context_kv = keras.layers.Conv2D(2 * dim, 1, use_bias=False,
                                              kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                                              name="context_kv", dtype=self.dtype_policy)

    def build(self, input_shape):
        x_shape, context_shape = input_shape
        if x_shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: dim={self.dim} but x has {x_shape[-1]} channels")
        if None in tuple(context_shape[1:3]):
            raise ValueError(f"{type(self).__name__} needs a static context size, got {context_shape}")
        self.norm.build(x_shape)
        self.context_norm.build(context_shape)
        self.context_kv.build((None, self.context_size, self.context_size, context_shape[-1]))

    def call(self, inputs, training=None):
        x, context = inputs
        height, width = x.shape[1], x.shape[2]
        keys_count = self.context_size ** 2
        kv = adaptive_max_pool(self.context_norm(context, training=training), self.context_size)
        kv = ops.reshape(self.context_kv(kv), (-1, keys_count, 2 * self.dim))
        keys, values = kv[..., :self.dim], kv[..., self.dim:]
        queries = ops.reshape(self.norm(x, training=training), (-1, height * width, self.dim))
        logits = ops.matmul(queries, ops.transpose(keys, (0, 2, 1))) * (keys_count ** -0.5)
        out = ops.matmul(softmax_float32(logits), values)
        return ops.reshape(out, (-1, height, width, self.dim))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, context_size=self.context_size)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class RTFormerFFN(keras.layers.Layer):
    """The feed-forward network of RTFormer's block (Wang et al., NeurIPS 2022, Sec. 3.1, official ``MLP``).

    Paper: "RTFormer: Efficient Design for Real-Time Semantic Segmentation with Transformer",
    Wang, Zheng, Luo, Ye, Ding, Zhu, Ding, Dou, NeurIPS 2022.

    BN (epsilon 1e-6), 3x3 conv with a bias to ``hidden_dim``, GELU, 3x3 conv with a
    bias back to ``dim``.

    Args:
        dim: input and output channels.
        hidden_dim: hidden channels (official: ``dim``).

    Example:
        >>> import numpy as np
        >>> tuple(RTFormerFFN(16)(np.zeros((1, 8, 8, 16), "float32")).shape)
        (1, 8, 8, 16)
    """

    def __init__(self, dim: int, hidden_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "dim", dim)
        if hidden_dim is not None:
            check_positive_int(type(self).__name__, "hidden_dim", hidden_dim)
        self.dim = dim
        self.hidden_dim = hidden_dim
        hidden = hidden_dim or dim
        self.norm = batch_norm("norm", epsilon=FFN_BN_EPSILON, dtype=self.dtype_policy)
        self.conv1 = keras.layers.Conv2D(hidden, 3, padding="same", kernel_initializer=conv_initializer(),
                                         name="conv1", dtype=self.dtype_policy)
        self.conv2 = keras.layers.Conv2D(dim, 3, padding="same", kernel_initializer=conv_initializer(),
                                         name="conv2", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(self.conv1.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.conv1(self.norm(inputs, training=training))
        return self.conv2(keras.activations.gelu(x, approximate=False))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, hidden_dim=self.hidden_dim)
        return config
