"""SeaFormer's squeeze-enhanced axial attention and its transformer block.

Wan, Zhang, Zhang, Lu, Zhang, "SeaFormer: Squeeze-enhanced Axial Transformer for
Mobile Semantic Segmentation", ICLR 2023 (Sec. 3.1-3.2, Fig. 3), as in the official
code (fudan-zvg/SeaFormer, ``Sea_Attention``, ``Mlp`` and ``Block``).

The global branch squeezes queries, keys and values to one row (mean over the width)
and one column (mean over the height), adds learnable axial positional embeddings,
runs multi-head attention along each axis, and broadcasts the two results back over
the map. The detail enhancement branch runs a depthwise 3x3 conv over the
concatenated q, k, v. The output is ``hard_sigmoid(global) * detail``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mobileseg.blocks.activations import get_activation, softmax_float32
from mobileseg.blocks.conv import ConvBNAct, check_positive_int, conv_initializer, drop_path_layer

POS_EMBED_LENGTH = 16  # the official SqueezeAxialPositionalEmbedding length, interpolated to the map size


def linear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The (in_size, out_size) matrix of 1-D linear interpolation with ``align_corners=False``.

    ``values @ matrix`` resizes the last axis of ``values`` exactly as PyTorch's
    ``F.interpolate(mode="linear", align_corners=False)`` (source index clamped at 0).

    Example:
        >>> m = linear_resize_matrix(2, 4)
        >>> (np.array([0.0, 1.0]) @ m).tolist()
        [0.0, 0.25, 0.75, 1.0]
    """
    matrix = np.zeros((in_size, out_size), dtype=np.float32)
    scale = in_size / out_size
    for target in range(out_size):
        source = max((target + 0.5) * scale - 0.5, 0.0)
        low = min(int(np.floor(source)), in_size - 1)
        high = min(low + 1, in_size - 1)
        weight = source - low
        matrix[low, target] += 1.0 - weight
        matrix[high, target] += weight
    return matrix


@keras.saving.register_keras_serializable(package="mobileseg")
class SeaAttention(keras.layers.Layer):
    """Squeeze-enhanced axial attention of SeaFormer (Wan et al., ICLR 2023, Sec. 3.1, "Sea_Attention").

    Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation",
    Wan, Zhang, Zhang, Lu, Zhang, ICLR 2023.

    q, k (``num_heads * key_dim`` channels) and v (``num_heads * attn_ratio * key_dim``)
    come from 1x1 conv-BNs. Row branch: q, k, v averaged over the width, q and k plus
    a learnable axial positional embedding, softmax attention over the H rows per head
    (scale ``key_dim ** -0.5``), then activation + 1x1 conv-BN; the column branch does
    the same over the width. ``v + row + column`` (broadcast over the map) goes through
    activation + 1x1 conv-BN to ``dim`` channels and a hard sigmoid, and multiplies the
    detail branch: concat(q, k, v) -> depthwise 3x3 conv-BN -> activation -> 1x1 conv-BN.

    The official positional embeddings are 16 long and linearly interpolated
    (``align_corners=False``) to the squeezed length at every call. Sizes are static here,
    so the layer keeps the 16-long parameters (official checkpoints load unchanged) and
    multiplies them by a constant interpolation matrix built for the input size; the
    converter folds the product into one constant. The projection BNs after the attention
    start with zero scale (official ``bn_weight_init=0``). The depthwise conv has
    ``2 * q_channels + v_channels`` channels, which is the official ``2 * dh`` at
    ``attn_ratio=2`` (the official code only runs with that ratio).

    Args:
        dim: input and output channels.
        key_dim: query/key channels per head.
        num_heads: attention heads.
        attn_ratio: value channels per head over ``key_dim``.
        activation: activation of the projections and the detail branch (the official
            backbone passes ReLU6 to its attention blocks).

    Example:
        >>> import numpy as np
        >>> layer = SeaAttention(32, key_dim=8, num_heads=2)
        >>> tuple(layer(np.zeros((1, 16, 12, 32), "float32")).shape)
        (1, 16, 12, 32)
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: int = 2,
                 activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        for name, value in (("dim", dim), ("key_dim", key_dim), ("num_heads", num_heads),
                            ("attn_ratio", attn_ratio)):
            check_positive_int(owner, name, value)
        self._activation = get_activation(activation)
        self.dim = dim
        self.key_dim = key_dim
        self.num_heads = num_heads
        self.attn_ratio = attn_ratio
        self.activation = activation
        self.qk_channels = key_dim * num_heads
        self.head_value_dim = attn_ratio * key_dim
        self.v_channels = self.head_value_dim * num_heads
        detail_channels = 2 * self.qk_channels + self.v_channels
        self.to_q = ConvBNAct(self.qk_channels, 1, activation="none", name="to_q", dtype=self.dtype_policy)
        self.to_k = ConvBNAct(self.qk_channels, 1, activation="none", name="to_k", dtype=self.dtype_policy)
        self.to_v = ConvBNAct(self.v_channels, 1, activation="none", name="to_v", dtype=self.dtype_policy)
        self.proj_encode_row = ConvBNAct(self.v_channels, 1, activation="none", name="proj_encode_row",
                                         dtype=self.dtype_policy)
        self.proj_encode_column = ConvBNAct(self.v_channels, 1, activation="none", name="proj_encode_column",
                                            dtype=self.dtype_policy)
        self.proj = ConvBNAct(dim, 1, activation="none", name="proj", dtype=self.dtype_policy)
        self.dwconv = ConvBNAct(detail_channels, 3, depthwise=True, activation=activation, name="dwconv",
                                dtype=self.dtype_policy)
        self.pwconv = ConvBNAct(dim, 1, activation="none", name="pwconv", dtype=self.dtype_policy)
        self._row_resize = None
        self._column_resize = None

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if channels != self.dim:
            raise ValueError(f"{type(self).__name__}: dim={self.dim} but the input has {channels} channels")
        if height is None or width is None:
            raise ValueError(f"{type(self).__name__} needs a static height and width, got {input_shape}")
        self.pos_emb_rowq = self._pos_embed("pos_emb_rowq")
        self.pos_emb_rowk = self._pos_embed("pos_emb_rowk")
        self.pos_emb_columnq = self._pos_embed("pos_emb_columnq")
        self.pos_emb_columnk = self._pos_embed("pos_emb_columnk")
        self._row_resize = linear_resize_matrix(POS_EMBED_LENGTH, height)
        self._column_resize = linear_resize_matrix(POS_EMBED_LENGTH, width)
        for conv in (self.to_q, self.to_k, self.to_v):
            conv.build(input_shape)
        self.proj_encode_row.build((None, height, 1, self.v_channels))
        self.proj_encode_column.build((None, 1, width, self.v_channels))
        self.proj.build((None, height, width, self.v_channels))
        detail = (None, height, width, 2 * self.qk_channels + self.v_channels)
        self.dwconv.build(detail)
        self.pwconv.build(detail)
        for conv in (self.proj, self.proj_encode_row, self.proj_encode_column):
            conv.bn.gamma.assign(ops.zeros_like(conv.bn.gamma))

    def _pos_embed(self, name):
        # Official: nn.Parameter(torch.randn([1, dim, 16])); stored here as (16, channels).
        return self.add_weight(name=name, shape=(POS_EMBED_LENGTH, self.qk_channels),
                               initializer=keras.initializers.RandomNormal(stddev=1.0))

    def _axial_attention(self, q, k, v, length, q_pos, k_pos, resize):
        # q, k: (B, L, qk_channels); v: (B, L, v_channels), one squeezed axis of length L.
        # The embeddings are float32 variables: added in the compute dtype (bfloat16 under mixed precision).
        q = q + ops.cast(ops.transpose(ops.matmul(ops.transpose(q_pos), resize)), q.dtype)
        k = k + ops.cast(ops.transpose(ops.matmul(ops.transpose(k_pos), resize)), k.dtype)
        q = ops.transpose(ops.reshape(q, (-1, length, self.num_heads, self.key_dim)), (0, 2, 1, 3))
        k = ops.transpose(ops.reshape(k, (-1, length, self.num_heads, self.key_dim)), (0, 2, 3, 1))
        v = ops.transpose(ops.reshape(v, (-1, length, self.num_heads, self.head_value_dim)), (0, 2, 1, 3))
        attention = softmax_float32(ops.matmul(q, k) * (self.key_dim ** -0.5))
        out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))  # (B, L, heads, head_value_dim)
        return ops.reshape(out, (-1, length, self.v_channels))

    def call(self, inputs, training=None):
        height, width = inputs.shape[1], inputs.shape[2]
        q = self.to_q(inputs, training=training)
        k = self.to_k(inputs, training=training)
        v = self.to_v(inputs, training=training)

        detail = self.dwconv(ops.concatenate([q, k, v], axis=-1), training=training)
        detail = self.pwconv(detail, training=training)

        row = self._axial_attention(ops.mean(q, axis=2), ops.mean(k, axis=2), ops.mean(v, axis=2), height,
                                    self.pos_emb_rowq, self.pos_emb_rowk, self._row_resize)
        row = ops.reshape(row, (-1, height, 1, self.v_channels))
        row = self.proj_encode_row(self._activation(row), training=training)
        column = self._axial_attention(ops.mean(q, axis=1), ops.mean(k, axis=1), ops.mean(v, axis=1), width,
                                       self.pos_emb_columnq, self.pos_emb_columnk, self._column_resize)
        column = ops.reshape(column, (-1, 1, width, self.v_channels))
        column = self.proj_encode_column(self._activation(column), training=training)

        out = v + (row + column)
        out = self.proj(self._activation(out), training=training)
        return keras.activations.hard_sigmoid(out) * detail

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, key_dim=self.key_dim, num_heads=self.num_heads,
                      attn_ratio=self.attn_ratio, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class SeaFormerMlp(keras.layers.Layer):
    """The feed-forward network of SeaFormer's block (Wan et al., ICLR 2023, Sec. 3.2, official ``Mlp``).

    Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation",
    Wan, Zhang, Zhang, Lu, Zhang, ICLR 2023.

    1x1 conv-BN to ``int(dim * mlp_ratio)`` channels, depthwise 3x3 conv with a bias
    (no BN), activation, 1x1 conv-BN back to ``dim``.

    Args:
        dim: input and output channels.
        mlp_ratio: hidden channels over ``dim``.
        activation: activation after the depthwise conv.

    Example:
        >>> import numpy as np
        >>> layer = SeaFormerMlp(16, mlp_ratio=2.0)
        >>> tuple(layer(np.zeros((1, 8, 8, 16), "float32")).shape), layer.hidden_dim
        ((1, 8, 8, 16), 32)
    """

    def __init__(self, dim: int, mlp_ratio: float = 2.0, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(type(self).__name__, "dim", dim)
        if not mlp_ratio > 0:
            raise ValueError(f"{type(self).__name__}: mlp_ratio must be positive, got {mlp_ratio!r}")
        self._activation = get_activation(activation)
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.activation = activation
        self.hidden_dim = int(dim * mlp_ratio)
        self.fc1 = ConvBNAct(self.hidden_dim, 1, activation="none", name="fc1", dtype=self.dtype_policy)
        self.dwconv = keras.layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=conv_initializer(),
                                                   name="dwconv", dtype=self.dtype_policy)
        self.fc2 = ConvBNAct(dim, 1, activation="none", name="fc2", dtype=self.dtype_policy)

    def build(self, input_shape):
        hidden = (*input_shape[:-1], self.hidden_dim)
        self.fc1.build(input_shape)
        self.dwconv.build(hidden)
        self.fc2.build(hidden)

    def call(self, inputs, training=None):
        x = self.fc1(inputs, training=training)
        x = self._activation(self.dwconv(x))
        return self.fc2(x, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, mlp_ratio=self.mlp_ratio, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="mobileseg")
class SeaFormerBlock(keras.layers.Layer):
    """SeaFormer's transformer block (Wan et al., ICLR 2023, Sec. 3.2, official ``Block``).

    Paper: "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation",
    Wan, Zhang, Zhang, Lu, Zhang, ICLR 2023.

    ``x + SeaAttention(x)`` then ``x + SeaFormerMlp(x)``, without normalization layers
    (the BNs live inside the conv-BNs), each branch optionally under stochastic depth.

    Args:
        dim: input and output channels.
        key_dim: query/key channels per head.
        num_heads: attention heads.
        mlp_ratio: FFN hidden channels over ``dim`` (official: 2 in the first attention
            stage, 4 in the second, 6 in SeaFormer-L's third).
        attn_ratio: value channels per head over ``key_dim``.
        activation: activation of the attention and the FFN (official backbone: ReLU6).
        drop_path: stochastic depth rate of both residual branches (training only).

    Example:
        >>> import numpy as np
        >>> block = SeaFormerBlock(32, key_dim=8, num_heads=2)
        >>> tuple(block(np.zeros((1, 8, 8, 32), "float32")).shape)
        (1, 8, 8, 32)
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, mlp_ratio: float = 2.0, attn_ratio: int = 2,
                 activation: str = "relu", drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.key_dim = key_dim
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.attn_ratio = attn_ratio
        self.activation = activation
        self.drop_path = drop_path
        self.attn = SeaAttention(dim, key_dim, num_heads, attn_ratio=attn_ratio, activation=activation,
                                 name="attn", dtype=self.dtype_policy)
        self.mlp = SeaFormerMlp(dim, mlp_ratio=mlp_ratio, activation=activation, name="mlp")
        self.drop_attn = drop_path_layer(drop_path, "drop_path_attn", dtype=self.dtype_policy)
        self.drop_mlp = drop_path_layer(drop_path, "drop_path_mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.attn.build(input_shape)
        self.mlp.build(input_shape)

    def call(self, inputs, training=None):
        branch = self.attn(inputs, training=training)
        branch = self.drop_attn(branch, training=training)
        x = inputs + branch
        branch = self.mlp(x, training=training)
        branch = self.drop_mlp(branch, training=training)
        return x + branch

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, key_dim=self.key_dim, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                      attn_ratio=self.attn_ratio, activation=self.activation, drop_path=self.drop_path)
        return config
