"""Every block signature of a search space: the exact walk, its sampling fallback, against samples."""

from pathlib import Path

import numpy as np

from mobileseg.arch import builder
from mobileseg.arch.space import SearchSpace
from mobileseg.latency import block_model, blocks, space_blocks

REPO = Path(__file__).resolve().parents[2]


def demo_space():
    return SearchSpace.load(REPO / "search_space" / "demo.yaml")


def test_space_enumeration_covers_random_samples_of_the_demo_space():
    space = demo_space()
    found = space_blocks.enumerate_space(space, (32, 32), 12)
    assert found.method == "exact"
    enumerated = set(found.signatures)
    assert len(enumerated) == len(found.signatures)
    rng = np.random.default_rng(0)
    for _ in range(50):
        genotype, _ = block_model.sample_buildable(space, rng, (32, 32), 12)
        missing = set(blocks.signatures_of(genotype, (32, 32), 12)) - enumerated
        assert not missing, [s.key for s in missing]


def test_space_enumeration_is_exact_on_the_demo_space():
    """Nothing listed that no network uses: the union of many samples is the enumeration."""
    space = demo_space()
    enumerated = set(space_blocks.space_signatures(space, (24, 40), 12))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(1500):
        seen |= set(blocks.signatures_of(block_model.sample_buildable(space, rng, (24, 40), 12)[0],
                                         (24, 40), 12))
    assert seen == enumerated


UNBUILDABLE_HEADS = """
name: heads
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: {choice: [8, 16]}, stride: 2}
  - choice:
      - null
      - {name: low, source: {branch: main}, cells: [{op: mbconv, width: 32, stride: 2}]}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: 16}
"""


def test_heads_the_builder_refuses_are_left_out_and_skipped_by_sampling():
    space = SearchSpace.from_text(UNBUILDABLE_HEADS)
    found = space_blocks.enumerate_space(space, (16, 16), 3)
    heads = sorted(s.key for s in found.signatures if s.op == "light_head")
    assert heads == [  # a single 8-channel input cannot feed a width-16 light head
        "light_head|in=8x8x16|out=8x8x3|k=1|s=1|e=1|w=16|in1=4x4x32|q=int8",
        "light_head|in=8x8x16|out=8x8x3|k=1|s=1|e=1|w=16|q=int8",
        "light_head|in=8x8x8|out=8x8x3|k=1|s=1|e=1|w=16|in1=4x4x32|q=int8"]
    assert "1 head/input combinations left out" in found.detail
    rng = np.random.default_rng(0)
    for _ in range(30):
        genotype, _ = block_model.sample_buildable(space, rng, (16, 16), 3)
        assert block_model.buildable(genotype, (16, 16), 3)
        builder.build_model(genotype, 3, (16, 16))  # really builds


def test_a_space_with_removable_cells_is_sampled_instead():
    space = SearchSpace.from_text("""
    name: removable
    branches:
      - name: main
        source: null
        cells:
          - {op: conv, width: 8, stride: 2}
          - choice: [null, {op: conv, width: {choice: [8, 16]}}]
    head: {op: light, inputs: [{branch: main}], width: 8}
    """)
    found = space_blocks.enumerate_space(space, (16, 16), 3, patience=50)
    assert found.method == "sampled"
    assert "can remove the cell" in found.detail
    assert {s.key.split("|")[0] for s in found.signatures} == {"conv", "light_head"}
    # stem, conv 8->8 and the head: conv 8->16 is only in networks whose head the builder refuses
    assert len(found.signatures) == 3


def test_a_cell_reading_a_dropped_branch_passes_its_input_on():
    """The space turns such a cell into skip: its input shape reaches the next cell."""
    space = SearchSpace.from_text("""
    name: dropped
    branches:
      - name: main
        source: null
        cells:
          - {op: conv, width: 8, stride: 2}
          - {op: fuse, context: {branch: low}, width: 16, mode: sum}
          - {op: conv, width: 8}
      - choice:
          - null
          - {name: low, source: {branch: main, cell: 0}, cells: [{op: conv, width: 8, stride: 2}]}
    head: {op: light, inputs: [{branch: main}], width: 8}
    """)
    enumerated = set(space_blocks.space_signatures(space, (16, 16), 3))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        seen |= set(blocks.signatures_of(block_model.sample_buildable(space, rng, (16, 16), 3)[0], (16, 16), 3))
    assert seen == enumerated
    assert {s.input for s in enumerated if s.op == "conv"} == {(16, 16, 3), (8, 8, 8), (8, 8, 16)}
