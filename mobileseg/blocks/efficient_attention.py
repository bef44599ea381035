"""SegFormer's efficient self-attention, Mix-FFN and transformer block, with Segformer++ token merging.

Xie, Wang, Yu, Anandkumar, Alvarez, Luo, "SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers", NeurIPS 2021 (Sec. 3.1), as in the official
code (NVlabs/SegFormer ``mix_transformer.py``: ``Attention``, ``Mlp``/``DWConv``,
``Block``), plus the token merging of Segformer++ (Kienzle et al., IEEE MIPR 2024) from
`mobileseg.blocks.token_merging`. Layers take and return NHWC maps and reshape to
tokens inside.
"""

from __future__ import annotations

import keras
from keras import ops

from mobileseg.blocks.activations import softmax_float32
from mobileseg.blocks.conv import check_positive_int, conv_initializer, drop_path_layer
from mobileseg.blocks.grid_merging import grid_merge, grid_unmerge
from mobileseg.blocks.token_merging import (
    WINDOW_MODES,
    BipartitePlan,
    bipartite_soft_matching,
    check_tome,
    merge_tokens,
    neighbour_merge,
    neighbour_unmerge,
    pool_size,
    unmerge_tokens,
)

BLOCK_LN_EPSILON = 1e-6  # official mit_b* blocks: partial(nn.LayerNorm, eps=1e-6)
SR_LN_EPSILON = 1e-5     # official Attention.norm: nn.LayerNorm(dim)


def dense_initializer() -> keras.initializers.Initializer:
    """The official initialization of SegFormer's linear layers: truncated normal, std 0.02."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="mobileseg")
class EfficientAttention(keras.layers.Layer):
    """Efficient self-attention of SegFormer (Xie et al., NeurIPS 2021, Sec. 3.1) with Segformer++ token merging.

    Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
    Xie, Wang, Yu, Anandkumar, Alvarez, Luo, NeurIPS 2021; token merging from "Segformer++:
    Efficient Token-Merging Strategies for High-Resolution Semantic Segmentation", Kienzle,
    Kantonis, Schön, Lienhart, IEEE MIPR 2024.

    Queries from a dense layer on every token; keys and values from a dense layer on
    tokens spatially reduced by an ``sr_ratio x sr_ratio`` conv with stride ``sr_ratio``
    and a LayerNorm (no reduction when ``sr_ratio == 1``); multi-head softmax attention
    with scale ``head_dim ** -0.5`` and an output dense layer.

    Token merging (Kienzle et al., "Segformer++", IEEE MIPR 2024) adds no weights, so it
    can be switched on for a trained layer. ``tome_mode``:

    - ``"kv_pool"`` / ``"kv_bsm"``: merge the (reduced) key/value tokens by ``s x s``
      average pooling (``tome_ratio = 1 - 1/s**2``) or by bipartite soft matching
      removing ``int(tome_ratio * N)`` of them;
    - ``"q_pool"`` / ``"q_bsm"``: merge the queries the same way and copy each merged
      query's output back to all its tokens after the output layer;
    - ``"q_grid"``: average ``s x s`` windows of the queries and give each token a
      similarity-weighted mix of the outputs of its own and the 8 neighbouring windows
      (Liang et al., NeurIPS 2022, in static form: `mobileseg.blocks.grid_merging`); the
      only one of the query modes whose int8 and fp32 files XNNPACK runs whole.

    ``tome_ratio = 0`` turns merging off whatever the mode. See
    `mobileseg.blocks.token_merging` for the matching and how it stays int8-friendly.

    Args:
        dim: input and output channels.
        num_heads: attention heads; must divide ``dim``.
        sr_ratio: spatial reduction of the keys and values (official B0-B5: 8, 4, 2, 1).
        qkv_bias: biases on the query and key/value layers (official mit_b*: True).
        tome_mode: one of ``"none", "kv_pool", "kv_bsm", "q_pool", "q_bsm", "q_grid"``.
        tome_ratio: share of the tokens merged away, in [0, 1).
        tome_stride: destination grid stride of bipartite matching (Segformer++'s
            ``sx = sy``); a ratio above ``1 - 1/tome_stride**2`` is refused.

    Example:
        >>> import numpy as np
        >>> layer = EfficientAttention(32, num_heads=2, sr_ratio=2, tome_mode="kv_bsm", tome_ratio=0.5)
        >>> tuple(layer(np.zeros((1, 8, 8, 32), "float32")).shape)
        (1, 8, 8, 32)
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True,
                 tome_mode: str = "none", tome_ratio: float = 0.0, tome_stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "num_heads", num_heads)
        check_positive_int(owner, "sr_ratio", sr_ratio)
        if dim % num_heads:
            raise ValueError(f"{owner}: dim={dim} is not divisible by num_heads={num_heads}")
        check_tome(owner, tome_mode, tome_ratio, tome_stride)
        self.dim = dim
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.qkv_bias = qkv_bias
        self.tome_mode = tome_mode
        self.tome_ratio = tome_ratio
        self.tome_stride = tome_stride
        self.head_dim = dim // num_heads
        self.q = keras.layers.Dense(dim, use_bias=qkv_bias, kernel_initializer=dense_initializer(), name="q",
                                    dtype=self.dtype_policy)
        self.kv = keras.layers.Dense(2 * dim, use_bias=qkv_bias, kernel_initializer=dense_initializer(), name="kv",
                                     dtype=self.dtype_policy)
        self.proj = keras.layers.Dense(dim, kernel_initializer=dense_initializer(), name="proj",
                                       dtype=self.dtype_policy)
        self.sr = None
        self.norm = None
        if sr_ratio > 1:
            self.sr = keras.layers.Conv2D(dim, sr_ratio, strides=sr_ratio, kernel_initializer=conv_initializer(),
                                          name="sr", dtype=self.dtype_policy)
            self.norm = keras.layers.LayerNormalization(epsilon=SR_LN_EPSILON, name="norm", dtype=self.dtype_policy)
        self._merge = "none" if tome_ratio == 0 else tome_mode
        self._plan = None
        self._pool = pool_size(owner, tome_ratio, tome_mode) if self._merge in WINDOW_MODES else None

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if channels != self.dim:
            raise ValueError(f"{type(self).__name__}: dim={self.dim} but the input has {channels} channels")
        if height is None or width is None:
            raise ValueError(f"{type(self).__name__} needs a static height and width, got {input_shape}")
        kv_height, kv_width = height, width
        if self.sr is not None:
            if height < self.sr_ratio or width < self.sr_ratio:
                raise ValueError(f"{type(self).__name__}: a {height}x{width} map is smaller than "
                                 f"sr_ratio={self.sr_ratio}")
            self.sr.build(input_shape)
            kv_height, kv_width = height // self.sr_ratio, width // self.sr_ratio
            self.norm.build((None, kv_height * kv_width, self.dim))
        if self._merge == "kv_bsm":
            self._plan = BipartitePlan.for_grid(kv_height, kv_width, self.tome_ratio, self.tome_stride)
        elif self._merge == "q_bsm":
            self._plan = BipartitePlan.for_grid(height, width, self.tome_ratio, self.tome_stride)
        if self._plan is not None and self._plan.num_merged == 0:  # a grid too small to merge
            self._merge, self._plan = "none", None
        tokens = (None, None, self.dim)
        self.q.build(tokens)
        self.kv.build(tokens)
        self.proj.build(tokens)

    def _heads(self, x):
        # (B, N, dim) -> (B, heads, N, head_dim); channel c = head * head_dim + d as officially.
        return ops.transpose(ops.reshape(x, (-1, x.shape[1], self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def merge_keys_values(self, kv, kv_height: int, kv_width: int):
        """The ``(B, kv_height * kv_width, dim)`` key/value tokens merged as ``tome_mode`` says (or as they are)."""
        if self._merge == "kv_pool":
            kv_map = neighbour_merge(ops.reshape(kv, (-1, kv_height, kv_width, kv.shape[-1])), self._pool)
            return ops.reshape(kv_map, (-1, kv_map.shape[1] * kv_map.shape[2], kv.shape[-1]))
        if self._merge == "kv_bsm":
            return merge_tokens(kv, self._plan, bipartite_soft_matching(kv, self._plan))
        return kv

    def merge_queries(self, query_map):
        """``(B, H, W, dim)`` -> the query tokens ``(B, M, dim)`` and what `unmerge_queries` needs."""
        if self._merge in ("q_pool", "q_grid"):
            pooled = (grid_merge if self._merge == "q_grid" else neighbour_merge)(query_map, self._pool)
            return ops.reshape(pooled, (-1, pooled.shape[1] * pooled.shape[2], pooled.shape[-1])), (query_map, pooled)
        tokens = ops.reshape(query_map, (-1, query_map.shape[1] * query_map.shape[2], query_map.shape[-1]))
        if self._merge == "q_bsm":
            matching = bipartite_soft_matching(tokens, self._plan)
            return merge_tokens(tokens, self._plan, matching), matching
        return tokens, None

    def unmerge_queries(self, out, state, height: int, width: int):
        """The ``(B, M, D)`` outputs of the merged queries back on the ``(B, height, width, D)`` map."""
        channels = out.shape[-1]
        if self._merge in ("q_pool", "q_grid"):
            query_map, pooled = state
            out = ops.reshape(out, (-1, pooled.shape[1], pooled.shape[2], channels))
            if self._merge == "q_grid":
                return grid_unmerge(query_map, pooled, out, self._pool)
            return neighbour_unmerge(out, height, width)
        if self._merge == "q_bsm":
            out = unmerge_tokens(out, self._plan, state)
        return ops.reshape(out, (-1, height, width, channels))

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if self.sr is not None:
            kv_map = self.sr(inputs)
            kv_height, kv_width = kv_map.shape[1], kv_map.shape[2]
            kv = self.norm(ops.reshape(kv_map, (-1, kv_height * kv_width, self.dim)))
        else:
            kv, kv_height, kv_width = ops.reshape(inputs, (-1, height * width, self.dim)), height, width
        kv = self.merge_keys_values(kv, kv_height, kv_width)
        queries, state = self.merge_queries(inputs)

        q = self._heads(self.q(queries))
        kv = self.kv(kv)
        k, v = self._heads(kv[..., :self.dim]), self._heads(kv[..., self.dim:])
        attention = softmax_float32(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (self.head_dim ** -0.5))
        out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
        out = self.proj(ops.reshape(out, (-1, queries.shape[1], self.dim)))
        return self.unmerge_queries(out, state, height, width)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, sr_ratio=self.sr_ratio, qkv_bias=self.qkv_bias,
                      tome_mode=self.tome_mode, tome_ratio=self.tome_ratio, tome_stride=self.tome_stride)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class MixFFN(keras.layers.Layer):
    """Mix-FFN of SegFormer (Xie et al., NeurIPS 2021, Sec. 3.1, Eq. 3; official ``Mlp`` + ``DWConv``).

    Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
    Xie, Wang, Yu, Anandkumar, Alvarez, Luo, NeurIPS 2021.

    Dense to ``int(dim * mlp_ratio)``, depthwise 3x3 conv with a bias (the positional
    information), exact GELU, dense back to ``dim``.

    Args:
        dim: input and output channels.
        mlp_ratio: hidden channels over ``dim`` (official: 4).

    Example:
        >>> import numpy as np
        >>> layer = MixFFN(16, mlp_ratio=4.0)
        >>> tuple(layer(np.zeros((1, 8, 8, 16), "float32")).shape), layer.hidden_dim
        ((1, 8, 8, 16), 64)
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "dim", dim)
        if not mlp_ratio > 0:
            raise ValueError(f"{type(self).__name__}: mlp_ratio must be positive, got {mlp_ratio!r}")
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.hidden_dim = int(dim * mlp_ratio)
        self.fc1 = keras.layers.Dense(self.hidden_dim, kernel_initializer=dense_initializer(), name="fc1",
                                      dtype=self.dtype_policy)
        self.dwconv = keras.layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=conv_initializer(),
                                                   name="dwconv", dtype=self.dtype_policy)
        self.fc2 = keras.layers.Dense(dim, kernel_initializer=dense_initializer(), name="fc2", dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden = (*input_shape[:-1], self.hidden_dim)
        self.fc1.build(input_shape)
        self.dwconv.build(hidden)
        self.fc2.build(hidden)

    def call(self, inputs):
        x = self.dwconv(self.fc1(inputs))
        return self.fc2(keras.activations.gelu(x, approximate=False))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, mlp_ratio=self.mlp_ratio)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class SegFormerBlock(keras.layers.Layer):
    """SegFormer's transformer block (Xie et al., NeurIPS 2021, Sec. 3.1, official ``Block``) with token merging.

    Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
    Xie, Wang, Yu, Anandkumar, Alvarez, Luo, NeurIPS 2021; token merging from "Segformer++:
    Efficient Token-Merging Strategies for High-Resolution Semantic Segmentation", Kienzle,
    Kantonis, Schön, Lienhart, IEEE MIPR 2024.

    ``x + EfficientAttention(LayerNorm(x))`` then ``x + MixFFN(LayerNorm(x))`` with
    LayerNorm epsilon 1e-6 (official mit_b*). Token merging as in `EfficientAttention`
    (Segformer++); it adds no weights, so a block built with ``tome_ratio > 0`` loads
    the weights of one trained without merging.

    Args:
        dim: input and output channels.
        num_heads: attention heads; must divide ``dim``.
        sr_ratio: spatial reduction of the keys and values.
        mlp_ratio: Mix-FFN hidden channels over ``dim``.
        tome_ratio: share of the tokens merged away, in [0, 1); 0 is off.
        tome_mode: one of ``"none", "kv_pool", "kv_bsm", "q_pool", "q_bsm", "q_grid"``.
        tome_stride: destination grid stride of bipartite matching.
        drop_path: stochastic depth rate of both residual branches (training only).

    Example:
        >>> import numpy as np
        >>> block = SegFormerBlock(32, num_heads=1, sr_ratio=4, tome_ratio=0.75, tome_mode="q_pool")
        >>> tuple(block(np.zeros((1, 16, 16, 32), "float32")).shape)
        (1, 16, 16, 32)
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, mlp_ratio: float = 4.0,
                 tome_ratio: float = 0.0, tome_mode: str = "none", tome_stride: int = 2, drop_path: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.mlp_ratio = mlp_ratio
        self.tome_ratio = tome_ratio
        self.tome_mode = tome_mode
        self.tome_stride = tome_stride
        self.drop_path = drop_path
        self.norm1 = keras.layers.LayerNormalization(epsilon=BLOCK_LN_EPSILON, name="norm1", dtype=self.dtype_policy)
        self.attn = EfficientAttention(dim, num_heads, sr_ratio=sr_ratio, tome_mode=tome_mode,
                                       tome_ratio=tome_ratio, tome_stride=tome_stride, name="attn",
                                       dtype=self.dtype_policy)
        self.norm2 = keras.layers.LayerNormalization(epsilon=BLOCK_LN_EPSILON, name="norm2", dtype=self.dtype_policy)
        self.mlp = MixFFN(dim, mlp_ratio=mlp_ratio, name="mlp", dtype=self.dtype_policy)
        self.drop_attn = drop_path_layer(drop_path, "drop_path_attn", dtype=self.dtype_policy)
        self.drop_mlp = drop_path_layer(drop_path, "drop_path_mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)

    def call(self, inputs, training=None):
        branch = self.attn(self.norm1(inputs))
        branch = self.drop_attn(branch, training=training)
        x = inputs + branch
        branch = self.mlp(self.norm2(x))
        branch = self.drop_mlp(branch, training=training)
        return x + branch

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, sr_ratio=self.sr_ratio, mlp_ratio=self.mlp_ratio,
                      tome_ratio=self.tome_ratio, tome_mode=self.tome_mode, tome_stride=self.tome_stride,
                      drop_path=self.drop_path)
        return config
