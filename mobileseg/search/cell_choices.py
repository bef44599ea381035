"""The choice points of a search space as rows of one logits matrix, grouped by the cells of its supernet.

A differentiable search (`mobileseg.search.differentiable`) keeps one logit vector per
choice point of the space (`mobileseg.search.encoding.all_choice_points`: every point of
the tree, active or not): a cell's op, a width, kernel or expansion inside one of its
alternatives, a fork point, an optional branch, the head's width. `CellChoices` lays them
out as the rows of a ``[points, widest]`` matrix (a row of ``n`` alternatives uses its
first ``n`` columns, `mask`) and says

- which **cell** owns each row (`owner`): the cell slot of `mobileseg.supernet.plan`
  whose path the row's path starts with; a branch's fork point and its presence choice
  belong to the branch's first cell; the head's choices to the head (index ``len(slots)``).
  Cells are independent (GAS: no sharing between cells), so every cell has rows of its own;
- which cells are **neighbours** (`adjacency`, the graph of GAS's GCN): cells connected by
  the lattice (the previous cell of a branch, a branch's fork point, a cell's context),
  through cells without any choice (a fixed stem links the cells on either side of it);
- which network an index per row gives (`genotype`), the most likely **valid** network of
  a distribution (`most_likely`: the argmax, and where it does not connect or build, the
  next-best alternatives, best first), and a Gumbel-max sample of one (`sample`).

Example:
    >>> import numpy as np
    >>> from mobileseg.arch.space import SearchSpace
    >>> from mobileseg.supernet.plan import SupernetPlan
    >>> space = SearchSpace.from_text('''
    ... name: tiny
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: {choice: [8, 16]}, stride: 2}
    ...       - {op: skip}
    ...       - choice: [{op: conv, width: 16, kernel: {choice: [1, 3]}}, {op: skip}]
    ... head: {op: light, inputs: [{branch: main}], width: {choice: [8, 16]}}
    ... ''')
    >>> choices = CellChoices(space, SupernetPlan(space, (16, 16)), num_classes=3)
    >>> choices.points
    ['branches[0].cells[0].width', 'branches[0].cells[2]', 'branches[0].cells[2]/0.kernel', 'head.width']
    >>> choices.owner.tolist(), choices.nodes, choices.adjacency.tolist()  # cells 0 and 2 meet through cell 1
    ([0, 2, 2, 3], [0, 2], [[0.0, 1.0], [1.0, 0.0]])
    >>> probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]])
    >>> best = choices.most_likely(probabilities)
    >>> best.decisions, best.fixups  # a light head reading one 8-wide input must be 8 wide: next best
    ({'branches[0].cells[0].width': 0, 'branches[0].cells[2]': 1, 'head.width': 0}, 1)
"""

from __future__ import annotations

import dataclasses
import heapq
import re

import numpy as np

from mobileseg.arch.genotype import Genotype
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import Decisions, SearchSpace
from mobileseg.latency.block_model import buildable
from mobileseg.search.encoding import all_choice_points, suggest_decisions
from mobileseg.supernet.plan import SupernetPlan

MAX_SAMPLE_DRAWS = 50
"""Gumbel draws per `CellChoices.sample` before it falls back to the most likely valid network."""
MAX_FIXUP_TRIES = 2000
"""Networks `CellChoices.most_likely` tries, best first, before giving up."""
_ALTERNATIVE = re.compile(r"^(.*)/(\d+)$")


@dataclasses.dataclass(frozen=True)
class Chosen:
    """One network of the space picked row by row.

    Attributes:
        indices: the alternative of every row (``[points]``), inactive rows included.
        decisions: the active decisions (``space.materialize(decisions) == genotype``).
        genotype: the network.
        arch: its supernet arch vector (`SupernetPlan.encode`).
        fixups: how many times the first choice had to be redrawn (`sample`) or how many
            networks before it were refused (`most_likely`) because they did not connect or build.
    """

    indices: np.ndarray
    decisions: Decisions
    genotype: Genotype
    arch: np.ndarray
    fixups: int


class CellChoices:
    """The rows of the architecture logits of a space and the cells that own them (module docstring).

    Args:
        space: the search space.
        plan: its supernet plan (the cells, in the supernet's order).
        num_classes: classes of the networks (a network must build: `mobileseg.latency.block_model.buildable`).

    Attributes:
        points: the choice path of every row.
        sizes: alternatives per row.
        mask: ``[points, widest]`` float32, 1 where a row has an alternative.
        owner: ``[points]`` the cell (index into ``plan.slots``) owning each row; ``len(plan.slots)``: the head.
        nodes: the cells owning at least one row with two or more alternatives (the GCN's nodes).
        node_rows: the rows of each node.
        adjacency: ``[nodes, nodes]`` 0/1, symmetric, zero diagonal.
    """

    def __init__(self, space: SearchSpace, plan: SupernetPlan, num_classes: int):
        self.space = space
        self.plan = plan
        self.num_classes = int(num_classes)
        self._all = all_choice_points(space)
        self.points = list(self._all)
        self.rows = {path: row for row, path in enumerate(self.points)}
        self.sizes = np.array([self._all[path] for path in self.points], dtype=np.int64)
        width = int(self.sizes.max()) if len(self.points) else 1
        self.mask = (np.arange(width)[None, :] < self.sizes[:, None]).astype(np.float32)
        self.owner = np.array([self._owner(path) for path in self.points], dtype=np.int64)
        multi = {int(self.owner[row]) for row in range(len(self.points)) if self.sizes[row] > 1}
        self.nodes = [position for position in range(len(plan.slots)) if position in multi]
        self.node_rows = [[row for row in range(len(self.points)) if self.owner[row] == node] for node in self.nodes]
        self.adjacency = self._adjacency()

    # -- layout ------------------------------------------------------------------------------------
    def _owner(self, path: str) -> int:
        for position, slot in enumerate(self.plan.slots):
            if _under(path, slot.path):
                return position
        for branch in self.plan.branches:
            match = _ALTERNATIVE.match(branch.path)
            if _under(path, branch.path) or (match and path == match.group(1)):
                return self.plan.slots.index(branch.cells[0])
        if _under(path, "head"):
            return len(self.plan.slots)
        raise GenotypeError(f"{self.space.source}: choice {path} belongs to no cell, branch or head")

    def branch_presence(self, name: str) -> list[tuple[int, int]]:
        """The (row, alternative) decisions that keep branch ``name`` in a network (its and its sources' own)."""
        branch = next(b for b in self.plan.branches if b.name == name)
        own = []
        match = _ALTERNATIVE.match(branch.path)
        if match and match.group(1) in self.rows:
            own.append((self.rows[match.group(1)], int(match.group(2))))
        if branch.source is not None:
            own += [entry for entry in self.branch_presence(branch.source.candidates[0][0]) if entry not in own]
        return own

    def _adjacency(self) -> np.ndarray:
        plan = self.plan
        position = {(slot.branch, slot.index): i for i, slot in enumerate(plan.slots)}
        is_node = set(self.nodes)

        def reads(i):
            slot = plan.slots[i]
            found = [(slot.branch, slot.index - 1)] if slot.index > 0 else (
                list(slot.source.candidates) if slot.source is not None else [])
            if slot.context is not None:
                found += list(slot.context.candidates)
            return [position[key] for key in found]

        def nearest_nodes(i, seen):
            out = set()
            for j in reads(i):
                if j in seen:
                    continue
                seen.add(j)
                out |= {j} if j in is_node else nearest_nodes(j, seen)
            return out

        index = {node: k for k, node in enumerate(self.nodes)}
        adjacency = np.zeros((len(self.nodes), len(self.nodes)), np.float32)
        for node in self.nodes:
            for other in nearest_nodes(node, set()):
                adjacency[index[node], index[other]] = adjacency[index[other], index[node]] = 1.0
        np.fill_diagonal(adjacency, 0.0)
        return adjacency

    # -- networks ----------------------------------------------------------------------------------
    def genotype(self, indices) -> tuple[Decisions, Genotype, np.ndarray]:
        """The active decisions, the network and its supernet arch vector, of an alternative per row.

        Raises:
            GenotypeError: the network does not connect, is not in the supernet, or cannot be built.
        """
        decisions = suggest_decisions(self.space, lambda path, n: int(indices[self.rows[path]]), "full", self._all)
        genotype = self.space.materialize(decisions)
        arch = self.plan.encode(genotype)  # GenotypeError if the supernet cannot run it
        if not buildable(genotype, self.plan.input_size, self.num_classes):
            raise GenotypeError(f"{self.space.source}: the head of {decisions} cannot be built")
        return decisions, genotype, arch

    def most_likely(self, probabilities) -> Chosen:
        """The most likely network that connects and builds: the argmax of every row, else the next best.

        Networks are tried in decreasing probability (a best-first search over each active
        row's alternatives ranked by probability), at most `MAX_FIXUP_TRIES`.

        Raises:
            GenotypeError: no valid network among the tries.
        """
        logp = np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-30))
        order = [np.argsort(-logp[row, :size], kind="stable") for row, size in enumerate(self.sizes)]
        drop = [logp[row, order[row][0]] - logp[row, order[row]] for row in range(len(self.points))]
        start = (0,) * len(self.points)
        heap, seen, last = [(0.0, start)], {start}, None
        for tries in range(MAX_FIXUP_TRIES):
            if not heap:
                break
            cost, ranks = heapq.heappop(heap)
            indices = np.array([order[row][rank] for row, rank in enumerate(ranks)], np.int64)
            try:
                return Chosen(indices, *self.genotype(indices), tries)
            except GenotypeError as error:
                last = error
                active = [self.rows[path] for path in self.space.choice_points(
                    {path: int(indices[row]) for row, path in enumerate(self.points)})]
            for row in active:
                if ranks[row] + 1 < self.sizes[row]:
                    child = ranks[:row] + (ranks[row] + 1,) + ranks[row + 1:]
                    if child not in seen:
                        seen.add(child)
                        heapq.heappush(heap, (cost + drop[row][ranks[row] + 1] - drop[row][ranks[row]], child))
        raise GenotypeError(f"{self.space.source}: no valid network among the {MAX_FIXUP_TRIES} most likely; "
                            f"last problem: {last}")

    def sample(self, logits, rng: np.random.Generator) -> tuple[Chosen, np.ndarray]:
        """A Gumbel-max sample of the distribution ``softmax(logits)`` per row, and its Gumbel noise.

        A sample that does not connect or build is drawn again (at most `MAX_SAMPLE_DRAWS`),
        then the most likely valid network is taken (with the last draw's noise, or none).
        """
        logits = np.asarray(logits, np.float64)
        noise = np.zeros(logits.shape)
        for draw in range(MAX_SAMPLE_DRAWS):
            noise = rng.gumbel(size=logits.shape) * self.mask
            indices = np.argmax(np.where(self.mask > 0, logits + noise, -np.inf), axis=1)
            try:
                return Chosen(indices, *self.genotype(indices), draw), noise.astype(np.float32)
            except GenotypeError:
                continue
        best = self.most_likely(_softmax(logits, self.mask))
        return dataclasses.replace(best, fixups=MAX_SAMPLE_DRAWS + best.fixups), noise.astype(np.float32)

    def gate_membership(self, decisions: Decisions) -> np.ndarray:
        """``[cells + 1, points]`` float32: 1 where a row is active in ``decisions`` and owned by that cell.

        The last line is the head's. Each line's product of straight-through values gates that cell's output.
        """
        membership = np.zeros((len(self.plan.slots) + 1, len(self.points)), np.float32)
        for path in decisions:
            row = self.rows[path]
            membership[self.owner[row], row] = 1.0
        return membership


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or a choice inside it."""
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "/")


def _softmax(logits, mask) -> np.ndarray:
    shifted = np.where(mask > 0, logits, -np.inf)
    shifted = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
