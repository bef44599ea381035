"""The one walker of a space tree: values, counts and paths agree with what the space samples."""

import numpy as np

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.arch.space_tree import alternatives, count, expand, is_choice, join, nodes_by_path

SPACE = '''
name: s
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, kernel: {choice: [3, 5]}, stride: 2}
      - choice: [{op: mbconv, width: 8, kernel: {choice: [3, 5]}}, {op: skip}]
  - choice:
      - null
      - {name: low, source: {branch: main}, cells: [{op: conv, width: 8, stride: 2}]}
head: {op: light, inputs: [{branch: main}], width: 8}
'''


def test_expand_lists_every_value_of_a_cell_once_in_count_order():
    node = SearchSpace.from_text(SPACE).tree["branches"][0]["cells"][1]
    values = expand(node)
    assert len(values) == count(node) == 3
    assert [(v["op"], v.get("kernel")) for v in values] == [("mbconv", 3), ("mbconv", 5), ("skip", None)]


def test_a_dropped_list_item_is_left_out_and_a_null_alternative_is_none():
    assert expand([1, {"choice": [None, 2]}]) == [[1], [1, 2]]
    assert expand({"choice": [None, 3]}) == [None, 3]
    assert count({"choice": [None, {"choice": [1, 2]}]}) == 3


def test_the_count_of_the_whole_tree_is_the_space_size_and_its_values_materialize():
    space = SearchSpace.from_text(SPACE)
    assert count(space.tree) == space.size() == 12
    sampled = {schema_io.dumps(space.sample(np.random.default_rng(seed))) for seed in range(60)}
    expanded = {schema_io.dumps(schema_io.from_dict(value, "s")) for value in expand(space.tree)}
    assert sampled <= expanded


def test_alternatives_name_the_decisions_the_space_takes():
    space = SearchSpace.from_text(SPACE)
    for decisions, value in alternatives(space.tree, ""):
        genotype = space.materialize(dict(decisions))
        assert schema_io.to_dict(genotype) == {**value, "name": "s"}


def test_paths_and_nodes():
    tree = SearchSpace.from_text(SPACE).tree
    nodes = nodes_by_path(tree)
    assert is_choice(nodes["branches[0].cells[1]"]) and not is_choice(nodes["branches[0].cells[1]/0"])
    assert nodes["branches[1]/1.cells[0].width"] == 8 and "branches[1]/0" not in nodes
    assert join(join("branches", 0), "cells") == "branches[0].cells"
