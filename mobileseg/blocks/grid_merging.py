"""Query merging on a fixed grid that XNNPACK runs whole: pooled destinations and a local soft reconstruction.

Liang, Cui, Hu, Zhang, Zhang, Wang, "Expediting Large-Scale Vision Transformer for Dense
Prediction without Fine-tuning", NeurIPS 2022 (official code:
Expedit-LargeScale-Vision-Transformer, ``TokenReconstructionBlock``), which needs no
retraining: a *token clustering layer* starts its clusters from an adaptive average pooling
of the token map, the transformer layers run on the clusters, and a *token reconstruction
layer* gives every original token a mix of the cluster outputs, weighted by
``exp(-tau * ||x_i - c_j||**2)`` over its ``k`` nearest clusters and normalized to sum 1.

Here, in the static form that XNNPACK runs in fp32 and int8 (no TOPK_V2, GATHER or SELECT,
every shape fixed when the layer is built), for the queries of one attention layer:

- **merge**: each destination is the average of an ``s x s`` window of the query map (the
  clusters' initialization in Liang et al., kept without their k-means refinement, whose
  assignment needs a data-dependent gather): AVERAGE_POOL_2D, as Segformer++'s neighbour
  pooling (`mobileseg.blocks.token_merging.neighbour_merge`) but with the grid anchored at
  the top-left corner (`grid_merge`);
- **unmerge**: every token's output is the softmax over the destinations of its own window
  and of the 8 windows around it (a fixed neighbourhood in place of the k nearest by
  feature distance, which is a TOPK) of ``-||x_i - c_j||**2 / (C * RECONSTRUCTION_TEMPERATURE)``,
  times those destinations' outputs. Windows past the grid's edge repeat the edge window.
  The tokens are cut into their windows (RESHAPE, TRANSPOSE), so the distances and the mix
  are two BATCH_MATMULs of ``s*s`` tokens against 9 destinations per window, and a SOFTMAX.

``||x_i||**2`` is the same for all of a token's candidates, so the logits are
``(2 x_i . c_j - ||c_j||**2) / (C * T)``: no per-token norm is computed.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mobileseg.blocks.activations import softmax_float32

RECONSTRUCTION_TEMPERATURE = 0.1
"""``T`` in the reconstruction's ``softmax(-mean_c (x_i - c_j)**2 / T)``, per channel.

Liang et al.'s ``tau`` of 0.01-0.05 on the summed squared distance of 768-1024-channel
features is ``1 / (tau * C)`` = 0.02-0.13 per channel; 0.1 is in that range and untuned here
(no CamVid-trained SegFormer to tune it on)."""
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
"""Window offsets of a token's candidate destinations: its own window and the 8 around it."""


def _edge_padded(grid):
    """An NHWC map with its first and last row and column repeated once outside it."""
    grid = ops.concatenate([grid[:, :1], grid, grid[:, -1:]], axis=1)
    return ops.concatenate([grid[:, :, :1], grid, grid[:, :, -1:]], axis=2)


def neighbourhood(grid):
    """``(B, h, w, C)`` -> ``(B*h*w, 9, C)``: each grid cell's `NEIGHBOURS`, edge cells repeated.

    The 9 maps are joined 3 at a time: XNNPACK runs a 3-input CONCATENATION but not a
    9-input one (measured with ai-edge-litert 2.3).

    Example:
        >>> import numpy as np
        >>> grid = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
        >>> np.asarray(neighbourhood(grid))[0, :, 0].tolist()  # cell (0, 0): rows -1 and 0 are row 0
        [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0]
    """
    height, width, channels = grid.shape[1], grid.shape[2], grid.shape[3]
    padded = _edge_padded(grid)
    shifted = [padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy, dx in NEIGHBOURS]
    rows = [ops.concatenate(shifted[start:start + 3], axis=-1) for start in range(0, len(shifted), 3)]
    return ops.reshape(ops.concatenate(rows, axis=-1), (-1, len(NEIGHBOURS), channels))


def to_windows(token_map, size: int, grid_height: int, grid_width: int):
    """``(B, H, W, C)`` -> ``(B*h*w, size*size, C)``, zero-padding H and W up to ``h*size`` and ``w*size``.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> np.asarray(to_windows(x, 2, 2, 2))[1, :, 0].tolist()  # the top-right 2x2 window
        [2.0, 3.0, 6.0, 7.0]
    """
    height, width, channels = token_map.shape[1], token_map.shape[2], token_map.shape[3]
    pad_height, pad_width = grid_height * size - height, grid_width * size - width
    if pad_height or pad_width:
        token_map = ops.pad(token_map, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]])
    windows = ops.reshape(token_map, (-1, grid_height, size, grid_width, size, channels))
    windows = ops.transpose(windows, (0, 1, 3, 2, 4, 5))
    return ops.reshape(windows, (-1, size * size, channels))


def from_windows(windows, size: int, grid_height: int, grid_width: int, height: int, width: int):
    """Undo `to_windows`: ``(B*h*w, size*size, C)`` -> ``(B, height, width, C)``, the padding cropped."""
    channels = windows.shape[-1]
    token_map = ops.reshape(windows, (-1, grid_height, grid_width, size, size, channels))
    token_map = ops.transpose(token_map, (0, 1, 3, 2, 4, 5))
    token_map = ops.reshape(token_map, (-1, grid_height * size, grid_width * size, channels))
    if grid_height * size != height or grid_width * size != width:
        token_map = token_map[:, :height, :width]
    return token_map


def grid_unmerge(token_map, destinations, outputs, size: int):
    """Each token's output: its 9 nearby destinations' ``outputs`` mixed by feature distance (module doc).

    Args:
        token_map: ``(B, H, W, C)`` the tokens before merging (the attention's input).
        destinations: ``(B, h, w, C)`` their ``size x size`` window averages (`grid_merge`).
        outputs: ``(B, h, w, D)`` the attention's output for each destination.
        size: the window side.

    Returns:
        ``(B, H, W, D)``.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((1, 4, 4, 2), "float32"); x[:, :, 2:] = 5.0  # two flat halves
        >>> pooled = np.asarray(grid_merge(x, 2))
        >>> y = np.array([[[[1.0], [2.0]], [[1.0], [2.0]]]], "float32")  # one output per half
        >>> np.round(np.asarray(grid_unmerge(x, pooled, y, 2))[0, 0, :, 0], 3).tolist()
        [1.0, 1.0, 2.0, 2.0]
    """
    height, width, channels = token_map.shape[1], token_map.shape[2], token_map.shape[3]
    grid_height, grid_width = destinations.shape[1], destinations.shape[2]
    candidates = neighbourhood(destinations)                                    # (Bhw, 9, C)
    windows = to_windows(token_map, size, grid_height, grid_width)             # (Bhw, s*s, C)
    scale = 1.0 / (channels * RECONSTRUCTION_TEMPERATURE)
    cross = ops.matmul(windows * (2.0 * scale), ops.transpose(candidates, (0, 2, 1)))   # (Bhw, s*s, 9)
    squares = ops.sum(candidates * candidates, axis=-1) * scale                 # (Bhw, 9)
    weights = softmax_float32(cross - ops.expand_dims(squares, 1))
    mixed = ops.matmul(weights, neighbourhood(outputs))                         # (Bhw, s*s, D)
    return from_windows(mixed, size, grid_height, grid_width, height, width)


def grid_merge(token_map, size: int):
    """Average the ``size x size`` windows of an NHWC map, the grid anchored at the top-left corner.

    A ragged last row or column of windows averages only the tokens it holds, as TF's "same"
    pooling does, but every window starts at a multiple of ``size`` (TF's "same" pooling can
    shift the grid by a token), so `grid_unmerge` finds each token's window by position.

    Example:
        >>> import numpy as np
        >>> x = np.arange(15, dtype="float32").reshape(1, 3, 5, 1)
        >>> np.asarray(grid_merge(x, 2))[0, :, :, 0].tolist()
        [[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]]
    """
    height, width = token_map.shape[1], token_map.shape[2]
    grid_height, grid_width = -(-height // size), -(-width // size)
    pad_height, pad_width = grid_height * size - height, grid_width * size - width
    if not (pad_height or pad_width):
        return ops.average_pool(token_map, size, strides=size, padding="valid")
    padded = ops.pad(token_map, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]])
    counts = np.zeros((grid_height * size, grid_width * size), "float32")
    counts[:height, :width] = 1.0
    counts = counts.reshape(grid_height, size, grid_width, size).sum(axis=(1, 3))
    correction = (size * size / counts)[None, :, :, None].astype("float32")
    return ops.average_pool(padded, size, strides=size, padding="valid") * ops.cast(correction, token_map.dtype)
