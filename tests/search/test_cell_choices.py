"""The rows of the architecture logits: which cell owns each, the lattice between cells, valid networks."""

import numpy as np
import pytest

from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.arch.space_tree import alternatives
from mobileseg.search import cell_choices
from mobileseg.search.cell_choices import CellChoices
from mobileseg.supernet.plan import SupernetPlan
from tests.supernet.spaces import all_ops, tiny

SIZE = (32, 32)


def choices_of(space):
    return CellChoices(space, SupernetPlan(space, SIZE), num_classes=5)


def test_every_choice_point_has_a_row_owned_by_its_cell_its_branch_head_or_the_head():
    choices = choices_of(all_ops())
    slots = choices.plan.slots
    owner = {path: (slots[o].name if o < len(slots) else "head") for path, o in zip(choices.points, choices.owner)}
    assert owner["branches[0].cells[1]"] == owner["branches[0].cells[1]/0.expansion"] == "main_1"
    assert owner["branches[0].cells[4]/1.context.cell"] == "main_4"  # a context's cell is the cell's choice
    assert owner["branches[1]"] == owner["branches[1]/1.source.cell"] == "low_0"  # presence and fork: first cell
    assert owner["head.width"] == "head"
    assert choices.sizes.tolist() == [choices.mask[row].sum() for row in range(len(choices.points))]
    assert set(choices.nodes) == set(range(len(slots)))  # every cell of this space has a choice


def test_neighbours_follow_the_lattice_through_fixed_cells():
    choices = choices_of(tiny())  # main_0 (width), main_1 (fixed), main_2 (op), low_0 (presence, width)
    names = [choices.plan.slots[n].name for n in choices.nodes]
    assert names == ["main_0", "main_2", "low_0"]
    edges = {(names[i], names[j]) for i, j in zip(*np.nonzero(choices.adjacency)) if i < j}
    assert edges == {("main_0", "main_2"), ("main_2", "low_0")}  # main_1 has no choice: main_0 meets main_2


def test_the_most_likely_network_is_the_argmax_when_it_is_valid():
    choices = choices_of(tiny())
    rng = np.random.default_rng(0)
    for _ in range(10):
        probabilities = rng.dirichlet(np.ones(choices.mask.shape[1]), size=len(choices.points)) * choices.mask
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        best = choices.most_likely(probabilities)
        argmax = probabilities.argmax(axis=1)
        try:
            decisions, _, _ = choices.genotype(argmax)
        except GenotypeError:
            assert best.fixups > 0
            continue
        assert best.fixups == 0 and best.decisions == decisions
        assert np.array_equal(best.arch, choices.plan.encode(best.genotype))


def test_an_invalid_argmax_takes_the_next_best_alternative():
    # the light head reads main alone when low is dropped: then main's last width must be the head's
    choices = choices_of(tiny())
    probabilities = np.zeros(choices.mask.shape)
    for row, size in enumerate(choices.sizes):
        probabilities[row, :size] = 0.1 / (size - 1)
        probabilities[row, 0] = 0.9  # low dropped, head 8 wide, main_2 an mbconv...
    width = choices.rows["branches[0].cells[2]/0.width"]
    probabilities[width, :2] = [0.4, 0.6]  # ...16 wide, but only just: the argmax does not build
    with pytest.raises(GenotypeError):
        choices.genotype(probabilities.argmax(axis=1))
    best = choices.most_likely(probabilities)
    assert best.fixups == 1 and best.genotype.head.width == 8
    assert best.indices.tolist() == [0] * len(choices.points)  # the width went to 8, nothing else moved


def test_sampling_follows_the_softmax_and_gates_the_sampled_rows_only():
    space = SearchSpace.from_text("""
name: two
branches:
  - {name: main, source: null, cells: [{op: conv, width: {choice: [8, 16]}, stride: 2}]}
head: {op: light, inputs: [{branch: main}], width: {choice: [8, 16]}}
""")
    choices = choices_of(space)
    logits = np.log(np.array([[0.8, 0.2], [0.5, 0.5]]))
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(400):
        sample, noise = choices.sample(logits, rng)
        widths.append(sample.genotype.branches[0].cells[0].width)
        assert sample.genotype.head.width == widths[-1]  # the other pairs do not build: redrawn
    assert np.mean(np.array(widths) == 8) == pytest.approx(0.8, abs=0.06)
    membership = choices.gate_membership(sample.decisions)
    assert membership.tolist() == [[1.0, 0.0], [0.0, 1.0]]  # the cell's row gates the cell, head.width the head


def test_too_many_invalid_draws_fall_back_to_the_most_likely(monkeypatch):
    choices = choices_of(tiny())
    monkeypatch.setattr(cell_choices, "MAX_SAMPLE_DRAWS", 0)
    sample, _ = choices.sample(np.zeros(choices.mask.shape), np.random.default_rng(0))
    assert sample.decisions == choices.most_likely(np.where(choices.mask > 0, 1.0, 0.0)).decisions


def test_alternatives_list_each_value_with_its_decisions():
    node = {"choice": [{"op": "conv", "width": {"choice": [8, 16]}}, {"op": "skip"}]}
    found = alternatives(node, "c")
    assert [(d, v["op"], v.get("width")) for d, v in found] == [
        ((("c", 0), ("c/0.width", 0)), "conv", 8), ((("c", 0), ("c/0.width", 1)), "conv", 16),
        ((("c", 1),), "skip", None)]
