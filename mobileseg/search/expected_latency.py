"""The expected latency of a distribution over a space's networks, differentiable in its probabilities.

FasterSeg (Chen, Gong, Liu, Zhang, Li, Wang, "FasterSeg: Searching for Faster Real-time
Semantic Segmentation", ICLR 2020, Sec. 3.3) makes latency a loss term: every cell's
latency is the softmax-weighted sum of its candidate ops' latencies read from a lookup
table, and the network's is their sum. Here the table is the one the evolutionary search
uses (`mobileseg.latency.blocks.signatures_of` keys, the run's ``latency_table.json``), and

    E[ms] = overhead( sum over cells c, candidates v of c:  p(v) * ms(v)
                      + sum over head widths w: p(w) * ms(head at w) / sum of those p(w) )

where a candidate ``v`` is one concrete cell the space allows at that position (op and every
width, kernel, expansion... inside it) and ``p(v)`` the product of the probabilities of its
decisions, times the probability that its branch is in the network (an optional branch's
choice, and its source branch's) and, for a cell reading a second branch, that that branch is
too (else the space makes the cell ``skip``). ``overhead`` is the table's fitted correction.
Head widths the builder refuses (a light head with one input of another width) are left out
of the head's average.

Approximations, all exact when every probability is 0 or 1 (then ``E[ms]`` equals
`~mobileseg.latency.predictor.TableLatencyModel.latency_ms` of that network, which the tests
check), all taken at the **most likely network** (``context``, `CellChoices.most_likely`):

- a cell's input shape, and its context's, depend on earlier cells' choices (widths): they
  are taken from the most likely network (its earlier choices at their most likely value);
  the cells of a branch that network drops take them from the most likely network with every
  optional branch present;
- the fork points, which head inputs exist and which cells the head depends on (only those
  count, as in `signatures_of`) are those of the most likely network: no gradient flows to
  the fork points' logits from latency.

Example:
    >>> import numpy as np
    >>> from mobileseg.arch.space import SearchSpace
    >>> from mobileseg.latency.blocks import signatures_of
    >>> from mobileseg.latency.device import local_fingerprint
    >>> from mobileseg.latency.predictor import TableLatencyModel
    >>> from mobileseg.latency.table import LatencyTable
    >>> from mobileseg.search.cell_choices import CellChoices
    >>> from mobileseg.supernet.plan import SupernetPlan
    >>> space = SearchSpace.from_text('''
    ... name: tiny
    ... branches:
    ...   - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2},
    ...                                        {choice: [{op: conv, width: 8}, {op: skip}]}]}
    ... head: {op: light, inputs: [{branch: main}], width: 8}
    ... ''')
    >>> table = LatencyTable(local_fingerprint())
    >>> record = {"p90_ms": 1, "std_ms": 0, "min_ms": 1, "runs": 1, "xnnpack_partitions": 1, "fallback_ops": []}
    >>> for decisions in ({"branches[0].cells[1]": 0}, {"branches[0].cells[1]": 1}):
    ...     for signature in signatures_of(space.materialize(decisions), (16, 16), 3):
    ...         table.add(signature, {**record, "median_ms": {"conv": 2.0}.get(signature.op, 1.0)})
    >>> choices = CellChoices(space, SupernetPlan(space, (16, 16)), 3)
    >>> latency = ExpectedLatency(choices, TableLatencyModel(table, lambda g: signatures_of(g, (16, 16), 3)))
    >>> context = choices.most_likely(np.array([[0.25, 0.75]]))  # skip is the more likely
    >>> ms, usable = latency.variant_ms(context)
    >>> float(latency.expected_ms(np.array([[0.25, 0.75]], "float32"), ms, usable))  # stem 2 + 0.25 * 2 + head 1
    3.5
"""

from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops

from mobileseg.arch.genotype import Genotype, Head, Ref
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space_tree import alternatives, nodes_by_path
from mobileseg.latency.block_model import head_builds
from mobileseg.latency.blocks import cell_signature, head_signature, live_cells
from mobileseg.latency.predictor import MeasuringLatencyModel, TableLatencyModel
from mobileseg.run.fingerprint import genotype_key
from mobileseg.search.cell_choices import CellChoices, Chosen
from mobileseg.supernet.plan import cell_from_dict

CACHE_SIZE = 64
"""Contexts (most likely networks) whose candidate latencies are kept."""


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One concrete cell at a position (``slot`` into ``plan.slots``), or one head width (``slot`` -1).

    ``entries``: the (row, alternative) decisions whose probabilities multiply into its own.
    """

    slot: int
    entries: tuple[tuple[int, int], ...]
    value: object


class ExpectedLatency:
    """``E[ms]`` of a distribution over the networks of ``choices.space`` (module docstring).

    Args:
        choices: the rows of the architecture logits.
        latency_model: the search's table latency model (its table, overhead and quantization);
            a measuring one (``local``, ``adb``) measures blocks its table lacks.
    """

    def __init__(self, choices: CellChoices, latency_model: TableLatencyModel):
        self.choices = choices
        self.model = latency_model
        self.quantization = latency_model.table.quantization
        plan = choices.plan
        nodes = nodes_by_path(choices.space.tree)
        self.candidates: list[Alternative] = []
        for position, slot in enumerate(plan.slots):
            presence = choices.branch_presence(slot.branch)
            for decisions, value in alternatives(nodes[slot.path], slot.path):
                entries = [(choices.rows[path], index) for path, index in decisions] + presence
                context = value.get("context")
                if context is not None:
                    entries += choices.branch_presence(context["branch"])
                self.candidates.append(Alternative(position, tuple(dict.fromkeys(entries)), value))
        for decisions, width in alternatives(nodes["head.width"], "head.width"):
            self.candidates.append(Alternative(-1, tuple((choices.rows[p], i) for p, i in decisions), width))
        depth = max(len(c.entries) for c in self.candidates) or 1
        flat = np.zeros((len(self.candidates), depth), np.int32)
        valid = np.zeros((len(self.candidates), depth), np.float32)
        widest = choices.mask.shape[1]
        for index, candidate in enumerate(self.candidates):
            for k, (row, column) in enumerate(candidate.entries):
                flat[index, k], valid[index, k] = row * widest + column, 1.0
        self._flat, self._valid = flat, valid
        self._head = np.array([c.slot < 0 for c in self.candidates], np.float32)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def candidate_probabilities(self, probabilities):
        """``[candidates]``: the probability of each candidate (its decisions and branches)."""
        gathered = ops.take(ops.reshape(ops.convert_to_tensor(probabilities, "float32"), (-1,)), self._flat)
        return ops.prod(ops.where(self._valid > 0, gathered, 1.0), axis=1)

    def expected_ms(self, probabilities, candidate_ms, usable):
        """The expected latency (a scalar tensor, differentiable in ``probabilities`` ``[points, widest]``).

        ``candidate_ms`` and ``usable`` come from `variant_ms` of the most likely network.
        """
        p = self.candidate_probabilities(probabilities)
        candidate_ms = ops.convert_to_tensor(candidate_ms, "float32")
        cells = ops.sum((1.0 - self._head) * p * candidate_ms)
        head_weight = self._head * p * ops.convert_to_tensor(usable, "float32")
        head = ops.sum(head_weight * candidate_ms) / ops.maximum(ops.sum(head_weight), 1e-12)
        overhead = self.model.overhead
        return overhead.scale * (cells + head) + overhead.offset_ms

    def variant_ms(self, context: Chosen) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate's latency (ms) at the shapes of the most likely network ``context``, and
        whether it is usable (a head the builder accepts; 1 for cells). Cached per network."""
        key = genotype_key(context.genotype)
        if key not in self._cache:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._variant_ms(context)
        return self._cache[key]

    def _variant_ms(self, context: Chosen) -> tuple[np.ndarray, np.ndarray]:
        plan, choices = self.choices.plan, self.choices
        networks = [context.genotype, self._with_every_branch(context)]
        facts = [(g, {b.name for b in g.branches}, g.cell_shapes(plan.input_size), live_cells(g))
                 for g in networks if g is not None]
        signatures: list = [None] * len(self.candidates)
        usable = np.ones(len(self.candidates), np.float32)
        head_refs = context.genotype.head.inputs
        head_inputs = [facts[0][2][context.genotype.resolve(ref)].output for ref in head_refs]
        for index, candidate in enumerate(self.candidates):
            if candidate.slot < 0:
                width = candidate.value
                usable[index] = head_builds(plan.head.op, width, tuple(head_inputs), choices.num_classes)
                if usable[index]:
                    head = Head(plan.head.op, head_refs, width)
                    signatures[index] = head_signature(head, head_inputs, choices.num_classes, self.quantization)
                continue
            slot = plan.slots[candidate.slot]
            found = next(((g, names, shapes, live) for g, names, shapes, live in facts if slot.branch in names), None)
            if found is None or (slot.branch, slot.index) not in found[3]:
                continue  # the branch is in no network considered, or the head does not use the cell
            genotype, names, shapes, _ = found
            cell = cell_from_dict(candidate.value, choices.space.source, slot.path)
            reference = cell.context_ref()
            if cell.OP == "skip" or (reference is not None and reference.branch not in names):
                continue  # skip, or a two-input cell whose second branch is absent (the space makes it skip)
            height, width, channels = shapes[(slot.branch, slot.index)].input
            stride = cell.downsampling()
            output = (-(-height // stride), -(-width // stride), cell.out_width(channels))
            context_shape = None if reference is None else shapes[genotype.resolve(reference)].output
            signatures[index] = cell_signature(cell, (height, width, channels), output, context_shape,
                                               self.quantization)
        self._measure_missing([s for s in signatures if s is not None])
        table = self.model.table
        ms = np.array([0.0 if s is None else table[s].median_ms for s in signatures], np.float32)
        return ms, usable

    def _with_every_branch(self, context: Chosen) -> Genotype | None:
        """``context`` with every optional branch present (its other decisions kept): None if it has them
        all already, or if that network does not connect or build."""
        present = {b.name for b in context.genotype.branches}
        absent = [b.name for b in self.choices.plan.branches if b.name not in present]
        if not absent:
            return None
        indices = context.indices.copy()
        for name in absent:
            for row, column in self.choices.branch_presence(name):
                indices[row] = column
        try:
            return self.choices.genotype(indices)[1]
        except GenotypeError:
            return None

    def _measure_missing(self, signatures) -> None:
        missing = self.model.table.missing(signatures)
        if missing and isinstance(self.model, MeasuringLatencyModel):
            model = self.model
            model.table.build(missing, model.make_model, model.measurer, convert=model.convert,
                              progress=model.progress, conversions=model.conversions)
