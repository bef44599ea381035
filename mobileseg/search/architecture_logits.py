"""The differentiable search's architecture parameters: one logit vector per choice point.

**Architecture parameters** (GAS: cell-independent, no sharing between cells): one logit vector
per choice point of the space (`mobileseg.search.cell_choices.CellChoices`): each cell's op,
and every width, kernel, expansion or ratio inside its alternatives; fork points, optional
branches and the head's width too. With ``gcn`` (GAS's GCN-Guided Module,
`mobileseg.search.gcn`), each cell's logits are updated from its lattice neighbours' before
the softmax. Initial logits: ``N(0, 1e-3)`` (DARTS).

The search that trains them is `mobileseg.search.differentiable`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mobileseg.search.cell_choices import CellChoices
from mobileseg.search.gcn import CellGraphConvolution

MASKED = -1e9
"""The logit past a row's alternatives (their probability is 0)."""


class ArchitectureLogits:
    """The logits of every choice point, ``[points, widest]``, optionally passed through the GCN.

    Args:
        choices: the layout of the rows.
        gcn: use GAS's GCN-Guided Module (when the space has at least one cell with a choice).
        hidden, gamma: the GCN's.
        init_scale: standard deviation of the initial logits.
        seed: of the initial logits and GCN weights.
    """

    def __init__(self, choices: CellChoices, gcn: bool, hidden: int = 16, gamma: float = 0.5,
                 init_scale: float = 1e-3, seed: int = 0):
        initial = np.random.default_rng(seed).normal(0.0, init_scale, choices.mask.shape) * choices.mask
        self.raw = tf.Variable(initial.astype(np.float32), name="arch_logits")
        self.mask = tf.constant(choices.mask)
        self.gcn = None
        if gcn and choices.nodes:
            self.gcn = CellGraphConvolution(choices.node_rows, choices.adjacency, hidden, gamma, seed,
                                            name="cell_gcn")
            self.gcn.build(choices.mask.shape)

    @property
    def variables(self) -> list:
        """What the architecture optimizer trains: the logits, then the GCN's maps."""
        return [self.raw, *(self.gcn.trainable_weights if self.gcn is not None else [])]

    def logits(self):
        """``alpha'``: the logits after the GCN, ``MASKED`` past each row's alternatives."""
        logits = self.raw if self.gcn is None else self.gcn(self.raw, self.mask)
        return tf.where(self.mask > 0, logits, MASKED)

    def probabilities(self):
        """``softmax(alpha')`` per row."""
        return tf.nn.softmax(self.logits(), axis=1)

