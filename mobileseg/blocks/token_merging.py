"""Token merging for SegFormer's attention, with TFLite builtin ops that quantize to int8.

Kienzle, Kantonis, Schön, Lienhart, "Segformer++: Efficient Token-Merging Strategies
for High-Resolution Semantic Segmentation", IEEE MIPR 2024 (official code:
KieDani/SegformerPlusPlus, ``EfficientMultiheadAttention``), which merges either the
keys/values or the queries of each attention layer, with no new weights, so a trained
network can merge without retraining. Two ways to merge:

- neighbour pooling (Segformer++ "n2d"): average ``s x s`` windows of the token map,
  removing ``1 - 1 / s**2`` of the tokens (0.75 for 2x2, 0.9375 for 4x4); merged
  queries are copied back to their windows by nearest-neighbour upsampling;
- bipartite soft matching (Bolya et al., "Token Merging: Your ViT But Faster",
  ICLR 2023), in the 2-D form of Segformer++ (tomesd's ``bipartite_soft_matching_random2d``
  with ``no_rand=True``): the top-left token of every ``stride x stride`` window is a
  destination, all others are sources; each source is matched to its most
  cosine-similar destination, and the ``r = int(ratio * N)`` best-matched sources
  (capped at the number of sources) are averaged into their destinations. Every token
  starts with size 1, so ToMe's size-weighted average is this plain mean of a
  destination and the sources merged into it. ToMe's proportional attention is not
  applied (Segformer++ does not use it either). Unmerging copies each destination's
  output back to the sources merged into it.

A third way, ``q_grid``, merges queries on a fixed grid in ops XNNPACK runs whole
(`mobileseg.blocks.grid_merging`, after Liang et al., NeurIPS 2022).

Matching is ``keras.ops`` that convert to builtin TFLite ops: the cosine similarity
is a BATCH_MATMUL of RSQRT-normalized tokens, the best match and the ranking TOPK_V2
(``ops.argmax`` converts to a non-builtin BitwiseAnd), the selections GATHERs, and
the merge a matmul with a one-hot matrix gathered from a constant identity (no
scatter). ``ratio`` and ``stride`` are fixed when the layer is built, so every shape
is static.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from keras import ops

TOME_MODES = ("none", "kv_pool", "kv_bsm", "q_pool", "q_bsm", "q_grid")
WINDOW_MODES = ("kv_pool", "q_pool", "q_grid")
"""Modes that merge ``s x s`` windows, so their ratio is ``1 - 1/s**2`` (`pool_size`)."""


def check_tome(owner: str, mode: str, ratio: float, stride: int) -> None:
    """Raise a ValueError naming ``owner`` unless the token-merging settings are valid.

    Example:
        >>> check_tome("Block", "kv_pool", 0.5, 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Block: tome_mode 'kv_pool' averages s x s windows, so tome_ratio must be 1 - 1/s**2 ... got 0.5
    """
    if mode not in TOME_MODES:
        raise ValueError(f"{owner}: unknown tome_mode {mode!r}; expected one of {', '.join(TOME_MODES)}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
        raise ValueError(f"{owner}: tome_ratio must be a number in [0, 1), got {ratio!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 2:
        raise ValueError(f"{owner}: tome_stride must be an integer >= 2, got {stride!r}")
    if mode == "none" and ratio > 0:
        raise ValueError(f"{owner}: tome_ratio={ratio} needs a tome_mode other than 'none'")
    if mode in WINDOW_MODES and ratio > 0:
        pool_size(owner, ratio, mode)
    if mode.endswith("_bsm") and ratio > 1.0 - 1.0 / stride ** 2:
        raise ValueError(f"{owner}: tome_ratio={ratio} removes more tokens than the {1 - 1 / stride ** 2:g} "
                         f"that are sources with tome_stride={stride}; raise tome_stride")


def pool_size(owner: str, ratio: float, mode: str = "kv_pool") -> int:
    """The window side ``s`` of a `WINDOW_MODES` merge that removes ``ratio = 1 - 1 / s**2`` of the tokens.

    Example:
        >>> pool_size("Block", 0.75), pool_size("Block", 0.9375)
        (2, 4)
    """
    side = 1.0 / math.sqrt(1.0 - ratio)
    if abs(side - round(side)) > 1e-6 or round(side) < 2:
        raise ValueError(f"{owner}: tome_mode {mode!r} averages s x s windows, so tome_ratio must be "
                         f"1 - 1/s**2 (0.75 for 2x2, 0.9375 for 4x4, ...) or 0, got {ratio}")
    return int(round(side))


@dataclasses.dataclass(frozen=True)
class BipartitePlan:
    """The static part of 2-D bipartite soft matching on an ``height x width`` token grid.

    Attributes:
        num_tokens: tokens before merging (``height * width``).
        src_index: raster indices of the source tokens (``Na``).
        dst_index: raster indices of the destinations, the top-left token of each
            ``stride x stride`` window inside the grid's divisible part (``Nb``).
        num_merged: ``r``, the sources merged away; 0 when the grid is smaller than
            ``stride`` on a side (no destinations: the grid is left unmerged).

    Example:
        >>> plan = BipartitePlan.for_grid(4, 4, ratio=0.5, stride=2)
        >>> plan.dst_index.tolist(), plan.num_merged, plan.num_kept
        ([0, 2, 8, 10], 8, 8)
    """

    height: int
    width: int
    stride: int
    src_index: np.ndarray
    dst_index: np.ndarray
    num_merged: int

    @classmethod
    def for_grid(cls, height: int, width: int, ratio: float, stride: int = 2) -> BipartitePlan:
        rows, cols = (height // stride) * stride, (width // stride) * stride
        is_dst = np.zeros((height, width), dtype=bool)
        is_dst[0:rows:stride, 0:cols:stride] = True
        flat = is_dst.reshape(-1)
        src_index = np.flatnonzero(~flat).astype("int32")
        dst_index = np.flatnonzero(flat).astype("int32")
        num_merged = min(int(ratio * height * width), len(src_index)) if len(dst_index) else 0
        return cls(height, width, stride, src_index, dst_index, num_merged)

    @property
    def num_tokens(self) -> int:
        return self.height * self.width

    @property
    def num_kept(self) -> int:
        """Tokens after merging: unmerged sources plus destinations."""
        return self.num_tokens - self.num_merged


@dataclasses.dataclass(frozen=True)
class Matching:
    """The data-dependent part of one bipartite matching, per batch element.

    Attributes:
        node_index: ``(B, Na)`` int32, each source's most similar destination.
        edge_order: ``(B, Na)`` int32, the sources by decreasing best similarity; the
            first ``r`` are merged.
    """

    node_index: object
    edge_order: object


def bipartite_soft_matching(metric, plan: BipartitePlan) -> Matching:
    """Match ``(B, N, C)`` tokens by cosine similarity of ``metric`` (Bolya et al., ICLR 2023, Sec. 3).

    Example:
        >>> import numpy as np
        >>> tokens = np.array([[[1, 0], [1, 0], [0, 1], [0, 1]]], "float32")  # rows of a 2x2 grid
        >>> plan = BipartitePlan.for_grid(2, 2, ratio=0.5, stride=2)
        >>> match = bipartite_soft_matching(tokens, plan)
        >>> np.asarray(match.edge_order).tolist()  # source 0 (token 1) points like destination 0
        [[0, 1, 2]]
    """
    metric = ops.cast(metric, "float32")  # cosine similarities in float32 under any policy (1e-12 is 0 in float16)
    metric = metric * ops.rsqrt(ops.sum(metric * metric, axis=-1, keepdims=True) + 1e-12)
    sources = ops.take(metric, plan.src_index, axis=1)
    destinations = ops.take(metric, plan.dst_index, axis=1)
    scores = ops.matmul(sources, ops.transpose(destinations, (0, 2, 1)))  # (B, Na, Nb)
    best, node_index = ops.top_k(scores, 1)
    _, edge_order = ops.top_k(best[..., 0], len(plan.src_index))
    return Matching(node_index=node_index[..., 0], edge_order=edge_order)


def _take_rows(x, index):
    """``x[b, index[b, i], :]`` for ``(B, N, C)`` x and ``(B, K)`` int32 index."""
    return ops.take_along_axis(x, ops.expand_dims(index, -1), axis=1)


def merge_tokens(x, plan: BipartitePlan, matching: Matching):
    """Merge ``(B, N, C)`` tokens to ``(B, N - r, C)``: kept sources, then the averaged destinations.

    Example:
        >>> import numpy as np
        >>> tokens = np.array([[[2, 0], [1, 0], [0, 1], [0, 3]]], "float32")  # a 2x2 grid
        >>> plan = BipartitePlan.for_grid(2, 2, ratio=0.25, stride=2)
        >>> merged = merge_tokens(tokens, plan, bipartite_soft_matching(tokens, plan))
        >>> np.asarray(merged).tolist()  # token 1 averaged into destination 0
        [[[0.0, 1.0], [0.0, 3.0], [1.5, 0.0]]]
    """
    r = plan.num_merged
    if r == 0:
        return x
    sources = ops.take(x, plan.src_index, axis=1)
    destinations = ops.take(x, plan.dst_index, axis=1)
    merged = _take_rows(sources, matching.edge_order[:, :r])                       # (B, r, C)
    targets = ops.take_along_axis(matching.node_index, matching.edge_order[:, :r], axis=1)
    one_hot = ops.cast(ops.take(np.eye(len(plan.dst_index), dtype="float32"), targets, axis=0), x.dtype)  # (B, r, Nb)
    sums = ops.matmul(ops.transpose(one_hot, (0, 2, 1)), merged)                    # (B, Nb, C)
    counts = ops.expand_dims(ops.sum(one_hot, axis=1), -1)                          # (B, Nb, 1)
    destinations = (destinations + sums) / (counts + 1.0)
    if r == len(plan.src_index):
        return destinations
    kept = _take_rows(sources, matching.edge_order[:, r:])
    return ops.concatenate([kept, destinations], axis=1)


def unmerge_tokens(y, plan: BipartitePlan, matching: Matching):
    """Undo `merge_tokens` on ``(B, N - r, C)`` outputs: every token gets its merged token's output.

    Example:
        >>> import numpy as np
        >>> tokens = np.array([[[2, 0], [1, 0], [0, 1], [0, 3]]], "float32")
        >>> plan = BipartitePlan.for_grid(2, 2, ratio=0.25, stride=2)
        >>> match = bipartite_soft_matching(tokens, plan)
        >>> np.asarray(unmerge_tokens(merge_tokens(tokens, plan, match), plan, match)).tolist()
        [[[1.5, 0.0], [1.5, 0.0], [0.0, 1.0], [0.0, 3.0]]]
    """
    r = plan.num_merged
    if r == 0:
        return y
    num_src, num_dst = len(plan.src_index), len(plan.dst_index)
    kept = num_src - r
    rank = ops.top_k(-matching.edge_order, num_src)[1]          # inverse permutation of edge_order
    source_position = ops.where(rank >= r, rank - r, matching.node_index + kept)
    dst_position = ops.zeros_like(matching.node_index[:, :1]) + np.arange(kept, kept + num_dst, dtype="int32")
    position = ops.concatenate([source_position, dst_position], axis=1)  # in [sources, destinations] order
    raster = np.argsort(np.concatenate([plan.src_index, plan.dst_index])).astype("int32")
    return _take_rows(y, ops.take(position, raster, axis=1))


def neighbour_merge(token_map, size: int):
    """Average ``size x size`` windows of an NHWC token map (TF "same" windows at ragged edges).

    Example:
        >>> import numpy as np
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> np.asarray(neighbour_merge(x, 2))[0, :, :, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    return ops.average_pool(token_map, size, strides=size, padding="same")


def neighbour_unmerge(token_map, height: int, width: int):
    """Copy each merged token of an NHWC map back to its window (nearest-neighbour upsampling).

    Example:
        >>> import numpy as np
        >>> x = np.array([[[[1.0], [2.0]]]], "float32")
        >>> np.asarray(neighbour_unmerge(x, 2, 4))[0, :, :, 0].tolist()
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    """
    return ops.image.resize(token_map, (height, width), interpolation="nearest")
