"""Block signatures of genotypes and spaces, and the one-block models the latency table times."""

from pathlib import Path

import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.arch.genotype import Head, Ref
from mobileseg.arch.space import SearchSpace
from mobileseg.deploy import tflite_convert
from mobileseg.latency import blocks
from mobileseg.litert_measure import measure_interleaved
from mobileseg.latency.signature import BlockSignature

REPO = Path(__file__).resolve().parents[2]

TINY = schema_io.loads("""
name: tiny
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, kernel: 3, stride: 2}
      - {op: mbconv, width: 16, kernel: 5, stride: 2, expansion: 2.0}
      - {op: skip}
      - {op: fuse, context: {branch: low}, width: 16, mode: sum}
  - name: low
    source: {branch: main, cell: 1}
    cells:
      - {op: sea_attention, heads: 2, key_dim: 8}
      - {op: mbconv, width: 24, stride: 2, expansion: 2.0}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: 16}
""")

# one cell of every op (and every head below), at tiny sizes
EVERY_OP = schema_io.loads("""
name: every_op
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2, act: hard_swish}
      - {op: patch_embed, width: 16, kernel: 3, stride: 2}
      - {op: mbconv, width: 16, kernel: 3, expansion: 2.0, se: true, act: hard_swish}
      - {op: zoomed_conv, width: 16, kernel: 3}
      - {op: efficient_attention, heads: 2, sr_ratio: 2, mlp_ratio: 2.0}
      - {op: fuse, context: {branch: low}, width: 16, mode: gate}
      - {op: cross_attention, context: {branch: low}, context_size: 2}
  - name: low
    source: {branch: main, cell: 4}
    cells:
      - {op: mbconv, width: 32, stride: 2, expansion: 2.0, expanded: 48}
      - {op: sea_attention, heads: 2, key_dim: 8}
      - {op: gfa_attention, heads: 2, units: 16}
      - {op: mhsa, heads: 2, key_dim: 8}
      - {op: fuse, context: {branch: main, cell: 3}, width: 32, mode: sum}
head: {op: mlp, inputs: [{branch: main}, {branch: low}], width: 16}
""")


def test_signatures_of_a_tiny_genotype():
    keys = [s.key for s in blocks.signatures_of(TINY, (32, 32), num_classes=5)]
    assert keys == [
        "conv|in=32x32x3|out=16x16x8|k=3|s=2|e=1|w=8|act=relu|q=int8",
        "mbconv|in=16x16x8|out=8x8x16|k=5|s=2|e=2|w=16|act=relu|expanded=0|se=false|q=int8",
        "fuse|in=8x8x16|out=8x8x16|k=1|s=1|e=1|w=16|ctx=4x4x24|mode=sum|q=int8",
        "sea_attention|in=8x8x16|out=8x8x16|k=1|s=1|e=1|w=0|act=relu|attn_ratio=2|heads=2|"
        "key_dim=8|mlp_ratio=2|q=int8",
        "mbconv|in=8x8x16|out=4x4x24|k=3|s=2|e=2|w=24|act=relu|expanded=0|se=false|q=int8",
        "light_head|in=8x8x16|out=8x8x5|k=1|s=1|e=1|w=16|in1=4x4x24|q=int8",
    ]
    fp16 = blocks.signatures_of(TINY, (32, 32), 5, quantization="fp16")
    assert {s.quantization for s in fp16} == {"fp16"}
    for signature in fp16:  # keys parse back, so a table on disk names its blocks
        assert BlockSignature.from_key(signature.key) == signature


def test_repeated_blocks_count_twice_and_dead_cells_not_at_all():
    genotype = schema_io.loads("""
    name: repeat
    branches:
      - name: a
        source: null
        cells: [{op: conv, width: 8}, {op: conv, width: 8}, {op: conv, width: 8}]
      - name: unused
        source: {branch: a, cell: 0}
        cells: [{op: conv, width: 4}]
    head: {op: light, inputs: [{branch: a}], width: 8}
    """)
    ops = [s.key.split("|")[1] for s in blocks.signatures_of(genotype, (8, 8), 3)]
    assert ops == ["in=8x8x3", "in=8x8x8", "in=8x8x8", "in=8x8x8"]  # 3 convs + head; no branch "unused"


def test_different_settings_give_different_keys():
    from mobileseg.arch.genotype import MBConv

    variants = [MBConv(width=16), MBConv(width=16, se=True), MBConv(width=16, act="hard_swish"),
                MBConv(width=16, expanded=40), MBConv(width=16, expansion=6.0), MBConv(width=16, kernel=5)]
    keys = {blocks.cell_signature(cell, (8, 8, 16), (8, 8, 16)).key for cell in variants}
    assert len(keys) == len(variants)


def layer_config(layer):
    return {k: v for k, v in layer.get_config().items() if k != "name"}


@pytest.mark.slow
def test_block_model_is_the_builders_layer_at_the_cells_shapes():
    size = (32, 32)
    network = builder.build_model(EVERY_OP, 5, size, batch_size=1)
    shapes = EVERY_OP.cell_shapes(size)
    signatures = blocks.signatures_of(EVERY_OP, size, 5)
    assert len(signatures) == 13  # 12 cells + head
    cells = [(b.name, i, c) for b in EVERY_OP.branches for i, c in enumerate(b.cells)]
    for (branch, index, cell), signature in zip(cells, signatures[:-1], strict=True):
        model = blocks.block_model(signature)
        shape = shapes[(branch, index)]
        assert tuple(model.output.shape) == (1, *shape.output), signature.key
        inputs = [tuple(t.shape) for t in model.inputs]
        assert inputs == [(1, *shape.input)] + ([(1, *shape.context)] if shape.context else [])
        expected = network.get_layer(f"{branch}_{index}_{cell.OP}")
        block = model.get_layer(signature.op)
        assert type(block) is type(expected) and layer_config(block) == layer_config(expected), signature.key
        assert [w.shape for w in block.weights] == [w.shape for w in expected.weights], signature.key
        rebuilt = blocks.cell_from_signature(signature)
        assert rebuilt == (cell if cell.context_ref() is None else type(cell)(**{
            **cell.__dict__, "context": Ref("context")}))
    head = blocks.block_model(signatures[-1])
    assert tuple(head.output.shape) == tuple(network.output.shape)
    assert layer_config(head.get_layer("mlp_head")) == layer_config(network.get_layer("head"))


@pytest.mark.parametrize("op, shapes", [("light", [(8, 8, 16)]), ("light", [(8, 8, 8), (4, 4, 16)]),
                                        ("mlp", [(8, 8, 8), (4, 4, 16), (2, 2, 32)]),
                                        ("lraspp", [(8, 8, 8), (2, 2, 32)])])
def test_head_blocks(op, shapes):
    signature = blocks.head_signature(Head(op, (), 16), shapes, num_classes=7)
    model = blocks.block_model(signature)
    assert [tuple(t.shape[1:]) for t in model.inputs] == shapes
    assert tuple(model.output.shape) == (1, 8, 8, 7)


def test_bad_signatures_are_refused_with_the_key():
    with pytest.raises(ValueError, match="'teleport' is not a cell op"):
        blocks.block_model(BlockSignature("teleport", (8, 8, 4), (8, 8, 4)))
    with pytest.raises(ValueError, match="no value for the mbconv field 'se'"):
        blocks.cell_from_signature(BlockSignature("mbconv", (8, 8, 4), (8, 8, 4), width=4))
    with pytest.raises(ValueError, match=r"the layer gives output \(8, 8, 4\), not \(8, 8, 5\)"):
        blocks.block_model(BlockSignature("conv", (8, 8, 4), (8, 8, 5), kernel=3, width=4,
                                          extra={"act": "relu"}))


@pytest.mark.slow
def test_sum_of_blocks_is_close_to_the_network():
    genotype = schema_io.loads("""
    name: convnet
    branches:
      - name: main
        source: null
        cells:
          - {op: conv, width: 16, stride: 2}
          - {op: mbconv, width: 32, stride: 2, expansion: 4.0}
          - {op: mbconv, width: 32, expansion: 4.0}
          - {op: conv, width: 32, kernel: 3}
    head: {op: light, inputs: [{branch: main}], width: 32}
    """)
    size = (96, 96)
    signatures = blocks.signatures_of(genotype, size, 5)
    flatbuffers = [tflite_convert.convert(blocks.block_model(s), "int8") for s in signatures]
    images = tflite_convert.random_representative([(1, *size, 3)], low=0.0, high=255.0)
    network = tflite_convert.convert(builder.build_model(genotype, 5, size, batch_size=1), "int8",
                                     representative=images)
    # interleaved, so machine noise hits the blocks and the network alike
    *parts, whole = measure_interleaved([*flatbuffers, network], 1, min_runs=30, max_runs=200)
    total = sum(record.median_ms for record in parts)
    assert 0.6 < whole.median_ms / total < 1.6, (whole.median_ms, total)


def demo_space():
    return SearchSpace.load(REPO / "search_space" / "demo.yaml")


def test_space_enumeration_covers_random_samples_of_the_demo_space():
    space = demo_space()
    found = blocks.enumerate_space(space, (32, 32), 12)
    assert found.method == "exact"
    enumerated = set(found.signatures)
    assert len(enumerated) == len(found.signatures)
    rng = np.random.default_rng(0)
    for _ in range(50):
        genotype, _ = blocks.sample_buildable(space, rng, (32, 32), 12)
        missing = set(blocks.signatures_of(genotype, (32, 32), 12)) - enumerated
        assert not missing, [s.key for s in missing]


def test_space_enumeration_is_exact_on_the_demo_space():
    """Nothing listed that no network uses: the union of many samples is the enumeration."""
    space = demo_space()
    enumerated = set(blocks.space_signatures(space, (24, 40), 12))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(1500):
        seen |= set(blocks.signatures_of(blocks.sample_buildable(space, rng, (24, 40), 12)[0],
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
    found = blocks.enumerate_space(space, (16, 16), 3)
    heads = sorted(s.key for s in found.signatures if s.op == "light_head")
    assert heads == [  # a single 8-channel input cannot feed a width-16 light head
        "light_head|in=8x8x16|out=8x8x3|k=1|s=1|e=1|w=16|in1=4x4x32|q=int8",
        "light_head|in=8x8x16|out=8x8x3|k=1|s=1|e=1|w=16|q=int8",
        "light_head|in=8x8x8|out=8x8x3|k=1|s=1|e=1|w=16|in1=4x4x32|q=int8"]
    assert "1 head/input combinations left out" in found.detail
    rng = np.random.default_rng(0)
    for _ in range(30):
        genotype, _ = blocks.sample_buildable(space, rng, (16, 16), 3)
        assert blocks.buildable(genotype, (16, 16), 3)
        builder.build_model(genotype, 3, (16, 16))  # really builds


def test_sampling_skips_networks_the_builder_refuses():
    from mobileseg.arch.genotype import Branch, Conv, Genotype

    def network(width):  # made directly: the validator would refuse the width-16 one
        return Genotype("n", (Branch("main", None, (Conv(width=width, stride=2),)),),
                        Head("light", (Ref("main"),), 8))

    class Space:
        source = "fake.yaml"
        drawn = iter([network(16), network(16), network(8)])

        def sample(self, rng):
            return next(self.drawn)

    genotype, skipped = blocks.sample_buildable(Space(), None, (16, 16), 3)
    assert skipped == 2 and genotype.branches[0].cells[0].width == 8
    assert not blocks.buildable(network(16), (16, 16), 3)


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
    found = blocks.enumerate_space(space, (16, 16), 3, patience=50)
    assert found.method == "sampled"
    assert "can remove the cell" in found.detail
    assert {s.key.split("|")[0] for s in found.signatures} == {"conv", "light_head"}
    # stem, conv 8->8 and the head: conv 8->16 is only in networks whose head the builder refuses
    assert len(found.signatures) == 3


def test_the_search_latency_model_sums_the_table_and_names_a_missing_block(tmp_path):
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.latency.overhead import Overhead
    from mobileseg.latency.table import LatencyTable
    from mobileseg.latency.table_errors import MissingBlockError

    path = tmp_path / "table.json"
    table = LatencyTable(local_fingerprint(), overhead=Overhead("affine", 1.5, 0.25), path=path)
    signatures = blocks.signatures_of(TINY, (32, 32), 5)
    for i, signature in enumerate(signatures[:-1]):
        table.add(signature, {"median_ms": float(i + 1), "p90_ms": 1.0, "std_ms": 0.0,
                              "min_ms": 1.0, "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
    table.save()
    model = blocks.genotype_latency_model(f"table:{path}", (32, 32), 5)
    with pytest.raises(MissingBlockError, match=r"block light_head\|in=8x8x16\|.* has no entry in "
                                                 r"the latency table .*table\.json"):
        model.latency_ms(TINY)
    table.add(signatures[-1], {"median_ms": 10.0, "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0,
                               "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
    table.save()
    model = blocks.genotype_latency_model(f"table:{path}", (32, 32), 5)
    assert model.latency_ms(TINY) == pytest.approx(1.5 * (1 + 2 + 3 + 4 + 5 + 10) + 0.25)


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
    enumerated = set(blocks.space_signatures(space, (16, 16), 3))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        seen |= set(blocks.signatures_of(blocks.sample_buildable(space, rng, (16, 16), 3)[0], (16, 16), 3))
    assert seen == enumerated
    assert {s.input for s in enumerated if s.op == "conv"} == {(16, 16, 3), (8, 8, 8), (8, 8, 16)}
