import dataclasses

import numpy as np
import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.supernet.plan import SupernetError, SupernetPlan
from tests.supernet import spaces

TWO_STRIDES = """
name: bad
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - choice: [{op: mbconv, width: 8, stride: 2}, {op: mhsa, heads: 2, key_dim: 4}]
head: {op: light, inputs: [{branch: main}], width: 8}
"""


def test_plan_of_demo_space():
    plan = SupernetPlan(spaces.demo(), (64, 64))
    by_name = {slot.name: slot for slot in plan.slots}
    assert [g.wide.OP for g in by_name["main_3"].groups] == ["mbconv", "zoomed_conv", "sea_attention", "skip"]
    assert by_name["main_3"].in_widths == {16, 24} and by_name["main_3"].out_max == 24
    assert by_name["main_3"].groups[0].wide.kernel == 5  # the widest kernel is shared
    assert not by_name["main_4"].optional and by_name["low_0"].optional and by_name["low_1"].optional
    assert by_name["low_0"].source.candidates == [("main", 4)]
    assert by_name["low_1"].size == (4, 4) and by_name["main_4"].size == (8, 8)
    assert plan.head.can_be_single and plan.head.input_optional == [False, True]


def test_space_that_cannot_be_a_supernet_names_the_choice_path():
    with pytest.raises(SupernetError, match=r"bad.yaml: branches\[0\].cells\[1\]: alternatives have different "
                                            r"strides \[1, 2\]"):
        SupernetPlan(SearchSpace.from_text(TWO_STRIDES, "bad.yaml"), (32, 32))


@pytest.mark.parametrize("text, message", [
    (TWO_STRIDES.replace("{op: mhsa, heads: 2, key_dim: 4}", "null"), r"cells\[1\]: a null alternative cannot drop"),
    (spaces.TINY.replace("source: {branch: main, cell: -1}", "source: {branch: main, cell: {choice: [0, 2]}}"),
     r"branches\[1\]/1.source: candidates \[\('main', 0\), \('main', 2\)\] have different strides"),
    (spaces.TINY.replace("- null", "- {name: other, source: {branch: main}, cells: [{op: skip}]}"),
     r"branches\[1\]: a supernet needs one branch per position"),
    (spaces.TINY.replace("inputs: [{branch: main}, {branch: low}]", "inputs: [{branch: low}, {branch: main}]"),
     r"head.inputs\[0\]: the head's first input sets the output resolution"),
    (spaces.TINY.replace("op: light", "op: lraspp"), r"head.inputs: the lraspp head takes a fixed number"),
    (spaces.TINY.replace("width: 16, stride: 2, expansion: 2.0", "width: 16, stride: 3, expansion: 2.0"),
     r"branches\[0\].cells\[1\].stride: 3 is not allowed"),
])
def test_unsupported_spaces_are_refused_clearly(text, message):
    with pytest.raises(GenotypeError, match=message):
        SupernetPlan(SearchSpace.from_text(text, "s.yaml"), (32, 32))


def test_kernels_smaller_than_the_stride_get_their_own_layer():
    text = TWO_STRIDES.replace("{op: mbconv, width: 8, stride: 2}, {op: mhsa, heads: 2, key_dim: 4}",
                               "{op: conv, width: 8, kernel: {choice: [1, 3, 5]}, stride: 2}")
    slot = SupernetPlan(SearchSpace.from_text(text), (32, 32)).slots[1]
    assert [(g.kernel_elastic, g.wide.kernel) for g in slot.groups] == [(False, 1), (False, 3), (False, 5)]
    same_stride = text.replace("stride: 2}]", "stride: 1}]")
    slot = SupernetPlan(SearchSpace.from_text(same_stride), (32, 32)).slots[1]
    assert [(g.kernel_elastic, g.wide.kernel) for g in slot.groups] == [(True, 5)]


def test_encode_gives_the_active_sizes_of_a_genotype():
    space = spaces.tiny()
    plan = SupernetPlan(space, (32, 32))
    decisions = {"branches[0].cells[0].width": 1, "branches[0].cells[2]": 0, "branches[0].cells[2]/0.width": 0,
                 "branches[0].cells[2]/0.kernel": 0, "branches[1]": 1, "branches[1]/1.cells[0].width": 1,
                 "head.width": 1}
    genotype = space.materialize(decisions)
    vector = plan.encode(genotype)
    field = {name: int(vector[index]) for name, index in plan.layout.items()}
    assert (field["main_0.in"], field["main_0.out"]) == (3, 12)
    assert (field["main_1.in"], field["main_1.hidden"], field["main_1.residual"]) == (12, 24, 0)
    assert (field["main_2.op"], field["main_2.in"], field["main_2.out"], field["main_2.kernel"]) == (0, 16, 8, 3)
    assert (field["low_0.op"], field["low_0.in"], field["low_0.out"]) == (0, 8, 24)
    assert (field["head.width"], field["head.single"], field["head.in1.present"]) == (16, 0, 1)

    dropped = plan.encode(space.materialize({**decisions, "branches[1]": 0, "branches[0].cells[2]/0.width": 1}))
    assert dropped[plan.layout["low_0.op"]] == plan.slot("low", 0).absent_index
    assert dropped[plan.layout["head.single"]] == 1 and dropped[plan.layout["head.in1.present"]] == 0


def test_encode_refuses_genotypes_outside_the_space_or_unbuildable():
    space = spaces.tiny()
    plan = SupernetPlan(space, (32, 32))
    genotype = space.sample(np.random.default_rng(0))
    wider = genotype.replace_cells(lambda b, i, c: dataclasses.replace(c, width=40) if i == 0 else c)
    with pytest.raises(GenotypeError, match="is not in the space tiny.yaml"):
        plan.encode(wider)
    with pytest.raises(GenotypeError, match="a light head with one input keeps its width"):
        schema_io.loads("""
name: tiny
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: 16, stride: 2, expansion: 2.0}
      - {op: skip}
head: {op: light, inputs: [{branch: main}], width: 8}
""")


def test_a_cell_reading_an_optional_branch_can_become_skip():
    text = spaces.TINY.replace("- {op: skip}", "- {op: fuse, context: {branch: low, cell: -1}, width: 8, mode: sum}")
    text = text.replace("source: {branch: main, cell: -1}", "source: {branch: main, cell: 1}")
    plan = SupernetPlan(SearchSpace.from_text(text), (32, 32))
    assert [g.wide.OP for g in plan.slot("main", 2).groups] == ["mbconv", "fuse", "skip"]
