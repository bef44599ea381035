import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace

SPACE = """
name: lattice
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: 16, stride: 2}
      - choice:
          - {op: mbconv, width: {choice: [16, 24]}, kernel: {choice: [3, 5]}}
          - {op: mhsa, heads: 2, key_dim: 8}
          - {op: skip}
      - {op: conv, width: 16, kernel: 1}
  - choice:
      - null
      - name: low
        source: {branch: main, cell: {choice: [1, 2]}}
        cells:
          - {op: mbconv, width: 32, stride: 2}
  - choice:
      - null
      - name: lower
        source: {branch: low}
        cells:
          - {op: mbconv, width: 48, stride: 2}
head: {op: light, inputs: [{branch: main}, {branch: low}, {branch: lower}], width: 16}
"""


@pytest.fixture
def space():
    return SearchSpace.from_text(SPACE, "lattice.yaml")


def test_size_counts_every_combination(space):
    main_cell = 2 * 2 + 1 + 1
    low = 1 + 2
    lower = 1 + 1
    assert space.size() == main_cell * low * lower


def test_sampling_is_seeded_and_reaches_every_option(space):
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(1000)]
    assert {len(g.branches) for g in samples} == {1, 2, 3}
    assert {g.branches[0].cells[2].OP for g in samples} == {"mbconv", "mhsa", "skip"}
    # without 'low', both 'lower' options collapse onto one network: 6 main-cell options counted twice
    assert len(set(samples)) == space.size() - 6


def test_dropping_a_branch_drops_its_children_and_head_inputs(space):
    rng = np.random.default_rng(1)
    for _ in range(50):
        g = space.sample(rng)
        names = [b.name for b in g.branches]
        assert [r.branch for r in g.head.inputs] == names
        assert "lower" not in names or "low" in names


def test_encode_inverts_materialize(space):
    rng = np.random.default_rng(2)
    for _ in range(30):
        g = space.sample(rng)
        assert space.materialize(space.encode(g)) == g


def test_mutation_changes_something_and_stays_in_the_space(space):
    rng = np.random.default_rng(4)
    parent = space.sample(rng)
    for _ in range(20):
        child = space.mutate(parent, rng)
        assert child != parent or space.size() == 1
        space.encode(child)


def test_crossover_mixes_parents(space):
    rng = np.random.default_rng(5)
    a = space.materialize({"branches[0].cells[2]": 1, "branches[1]": 0, "branches[2]": 0})
    b = space.materialize({"branches[0].cells[2]": 2, "branches[1]": 1, "branches[1]/1.source.cell": 0,
                           "branches[2]": 1})
    children = {space.crossover(a, b, rng) for _ in range(40)}
    ops = {c.branches[0].cells[2].OP for c in children}
    assert ops == {"mhsa", "skip"}
    assert {len(c.branches) for c in children} >= {1, 3}


def test_genotype_outside_the_space_is_refused(space):
    other = schema_io.loads(SPACE.split("  - choice:\n      - null")[0].replace(
        "      - choice:\n          - {op: mbconv, width: {choice: [16, 24]}, kernel: {choice: [3, 5]}}\n"
        "          - {op: mhsa, heads: 2, key_dim: 8}\n          - {op: skip}\n", "      - {op: mbconv, width: 40}\n")
        + "head: {op: light, inputs: [{branch: main}], width: 16}\n")
    with pytest.raises(GenotypeError, match="not in the space"):
        space.encode(other)


def test_bad_space_is_named():
    with pytest.raises(GenotypeError, match="x.yaml: branches\\[0\\].cells\\[0\\]: a cell needs a fixed 'op'"):
        SearchSpace.from_text(SPACE.replace("{op: conv, width: 8, stride: 2}",
                                            "{op: {choice: [conv, mbconv]}, width: 8}"), "x.yaml")
    with pytest.raises(GenotypeError, match="choice needs a non-empty list"):
        SearchSpace.from_text(SPACE.replace("{choice: [3, 5]}", "{choice: []}"), "x.yaml")


def test_an_impossible_space_raises_after_bounded_retries():
    impossible = SPACE.replace("{op: mhsa, heads: 2, key_dim: 8}", "{op: mhsa, heads: 2, key_dim: 8}").replace(
        "- {op: conv, width: 8, stride: 2}", "- {op: efficient_attention, heads: 2}")
    space = SearchSpace.from_text(impossible, "bad.yaml")
    with pytest.raises(GenotypeError, match="no valid network in 200 draws"):
        space.sample(np.random.default_rng(0))


def test_a_cell_reading_a_dropped_branch_becomes_skip():
    space = SearchSpace.from_text(SPACE.replace(
        "      - {op: conv, width: 16, kernel: 1}\n  - choice:",
        "      - {op: conv, width: 16, kernel: 1}\n      - choice: [{op: skip}, {op: fuse, context: {branch: low}, width: 16}]\n  - choice:"))
    g = space.materialize({"branches[0].cells[2]": 2, "branches[0].cells[4]": 1, "branches[1]": 0, "branches[2]": 0})
    assert [c.OP for c in g.branches[0].cells] == ["conv", "mbconv", "skip", "conv", "skip"]
    assert space.materialize(space.encode(g)) == g


def test_default_space_samples_always_connect():
    space = SearchSpace.load(Path(__file__).resolve().parents[2] / "search_space" / "default.yaml")
    rng = np.random.default_rng(0)
    for _ in range(100):
        space.materialize(space.sample_decisions(rng))


def test_encode_accepts_skip_made_from_a_cell_reading_a_dropped_branch_and_any_name():
    space = SearchSpace.from_text(SPACE.replace(
        "      - {op: conv, width: 16, kernel: 1}\n  - choice:",
        "      - {op: conv, width: 16, kernel: 1}\n      - {op: fuse, context: {branch: low}, width: 16}\n  - choice:"))
    g = space.materialize({"branches[0].cells[2]": 2, "branches[1]": 0, "branches[2]": 0})
    assert g.branches[0].cells[4].OP == "skip"
    assert space.materialize(space.encode(dataclasses.replace(g, name="renamed"))) == g


def test_a_space_file_that_is_not_utf8_or_an_alias_bomb_is_named(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_bytes(SPACE.replace("name: lattice", "name: r\xe9seau").encode("latin-1"))
    with pytest.raises(GenotypeError, match=r"space\.yaml: not UTF-8 text \(byte 0xe9 on line 2\)"):
        SearchSpace.load(path)
    levels = ["&a {choice: [8, 8, 8, 8, 8, 8, 8, 8, 8, 8]}"] + [
        f"&{name} {{choice: [{', '.join([f'*{before}'] * 10)}]}}" for before, name in zip("abcdefgh", "bcdefghi")]
    bomb = SPACE.replace("width: {choice: [16, 24]}", f"width: {{choice: [{', '.join(levels)}]}}")
    path.write_text(bomb)  # 10**9 widths once expanded
    with pytest.raises(GenotypeError, match=r"space\.yaml: more than 100000 values once its aliases"):
        SearchSpace.load(path)
