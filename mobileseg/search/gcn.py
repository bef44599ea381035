"""GAS's GCN-Guided Module: cells pass their architecture logits to their neighbours before the softmax.

Paper: Lin, Sun, Cheng, Xie, Li, Shi, "Graph-guided Architecture Search for Real-time Semantic
Segmentation", CVPR 2020, Sec. 3.3. GAS searches every cell independently (no cell shares its
architecture parameters) and lets them communicate through a graph convolution network: a
cell's parameters are updated with what its neighbours' parameters say, ``alpha'_k = alpha_k +
gamma * Phi(GCN(alpha)_k)``, and the softmax is taken of ``alpha'``.

Here, with `CellChoices` laying out the logits (one row per choice point, each cell owning
its rows; cells of different kinds have different rows, so each node has its own input and
output maps, where GAS's cells all share one op set):

1. **embed**: each node (cell) ``k`` flattens its rows to ``x_k`` (``rows x widest`` values,
   padding 0) and embeds them, ``h_k = x_k phi_k`` (``phi_k``: ``[D, hidden]``, per node);
2. **graph convolution** over the cell lattice (Kipf & Welling, ICLR 2017, one layer):
   ``z = relu(A_hat h W)`` with ``A_hat = D^-1/2 A D^-1/2`` of the lattice's adjacency
   *without* self loops, so ``z_k`` is made of the neighbours' logits only;
3. **residual update**: ``alpha'_k = alpha_k + gamma * z_k Phi_k`` (``Phi_k``: ``[hidden, D]``,
   no bias), back on the rows' real alternatives.

A cell with no neighbour gets ``z_k = 0``, so ``alpha'_k = alpha_k`` exactly; a cell's
update depends on its direct neighbours only (one layer). GAS builds its adjacency from the
similarity of the cells' embeddings among adjacent cells; here the adjacency is the lattice's
(`CellChoices.adjacency`: previous cell, fork point, context), fixed. All maps are trained
with the architecture logits, by the architecture optimizer.

Example:
    >>> import numpy as np
    >>> layer = CellGraphConvolution(node_rows=[[0], [1], [2]], adjacency=[[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    >>> logits = np.array([[0.5, -0.5], [1.0, 0.0], [2.0, 1.0]], "float32")
    >>> out = np.asarray(layer(logits, np.ones((3, 2), "float32")))
    >>> bool(np.allclose(out[2], logits[2])), bool(np.allclose(out[:2], logits[:2]))  # node 2 has no neighbour
    (True, False)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def normalized_adjacency(adjacency) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` of a 0/1 adjacency without self loops; a node with no neighbour gets a zero row.

    Example:
        >>> normalized_adjacency([[0, 1, 1], [1, 0, 0], [1, 0, 0]]).astype(float).round(3).tolist()
        [[0.0, 0.707, 0.707], [0.707, 0.0, 0.0], [0.707, 0.0, 0.0]]
    """
    adjacency = np.asarray(adjacency, np.float32)
    np.fill_diagonal(adjacency, 0.0)
    degree = adjacency.sum(axis=1)
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0).astype(np.float32)
    return adjacency * scale[:, None] * scale[None, :]


@keras.saving.register_keras_serializable(package="mobileseg")
class CellGraphConvolution(keras.layers.Layer):
    """The GCN-Guided Module over a ``[points, widest]`` logits matrix (module docstring).

    Args:
        node_rows: the rows of every node (cell), e.g. `CellChoices.node_rows`.
        adjacency: ``[nodes, nodes]`` 0/1 neighbours (the diagonal is ignored).
        hidden: width of the node embeddings.
        gamma: weight of the update.
        seed: of the initial weights.

    Call:
        ``layer(logits, mask)``: logits ``[points, widest]``; mask the same shape, 1 on real
        alternatives. Returns ``alpha'`` of the same shape (rows of no node unchanged).
    """

    def __init__(self, node_rows, adjacency, hidden: int = 16, gamma: float = 0.5, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.node_rows = [list(map(int, rows)) for rows in node_rows]
        self.adjacency = np.asarray(adjacency, np.float32).tolist()
        self.hidden = int(hidden)
        self.gamma = float(gamma)
        self.seed = int(seed)
        if len(self.adjacency) != len(self.node_rows):
            raise ValueError(f"adjacency is {len(self.adjacency)} nodes, node_rows {len(self.node_rows)}")
        self._a_hat = normalized_adjacency(self.adjacency)
        self._rows = max((len(rows) for rows in self.node_rows), default=0)

    def build(self, input_shape):
        points, widest = int(input_shape[0]), int(input_shape[1])
        nodes, size = len(self.node_rows), self._rows * widest
        gather = np.full((nodes, self._rows), points, np.int32)  # index ``points``: a zero row
        scatter = np.full(points, nodes * self._rows, np.int32)  # index past the end: no update
        for k, rows in enumerate(self.node_rows):
            gather[k, :len(rows)] = rows
            scatter[rows] = k * self._rows + np.arange(len(rows))
        self._gather, self._scatter, self._widest = gather, scatter, widest

        def init(stddev, offset):
            return keras.initializers.RandomNormal(stddev=stddev, seed=self.seed + offset)

        self.embed = self.add_weight(shape=(nodes, size, self.hidden), initializer=init(size ** -0.5, 0),
                                     name="embed")
        self.propagate = self.add_weight(shape=(self.hidden, self.hidden), initializer=init(self.hidden ** -0.5, 1),
                                         name="propagate")
        self.project = self.add_weight(shape=(nodes, self.hidden, size), initializer=init(self.hidden ** -0.5, 2),
                                       name="project")

    def call(self, logits, mask):
        logits = ops.convert_to_tensor(logits, "float32")
        mask = ops.convert_to_tensor(mask, "float32")
        nodes, widest = len(self.node_rows), self._widest
        padded = ops.concatenate([logits * mask, ops.zeros((1, widest))], axis=0)
        x = ops.reshape(ops.take(padded, self._gather, axis=0), (nodes, self._rows * widest))
        h = ops.einsum("kd,kdh->kh", x, self.embed)
        z = ops.relu(ops.matmul(ops.matmul(ops.convert_to_tensor(self._a_hat), h), self.propagate))
        update = ops.reshape(ops.einsum("kh,khd->kd", z, self.project), (nodes * self._rows, widest))
        update = ops.take(ops.concatenate([update, ops.zeros((1, widest))], axis=0), self._scatter, axis=0)
        return logits + self.gamma * update * mask

    def get_config(self):
        return {**super().get_config(), "node_rows": self.node_rows, "adjacency": self.adjacency,
                "hidden": self.hidden, "gamma": self.gamma, "seed": self.seed}
