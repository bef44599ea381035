"""The one-block models the latency table times, and which networks the builder can build."""

import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.arch.genotype import Head, Ref
from mobileseg.deploy import tflite_convert
from mobileseg.latency import block_model, blocks
from mobileseg.latency.signature import BlockSignature
from mobileseg.litert_measure import measure_interleaved

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
        model = block_model.block_model(signature)
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
    head = block_model.block_model(signatures[-1])
    assert tuple(head.output.shape) == tuple(network.output.shape)
    assert layer_config(head.get_layer("mlp_head")) == layer_config(network.get_layer("head"))


@pytest.mark.parametrize("op, shapes", [("light", [(8, 8, 16)]), ("light", [(8, 8, 8), (4, 4, 16)]),
                                        ("mlp", [(8, 8, 8), (4, 4, 16), (2, 2, 32)]),
                                        ("lraspp", [(8, 8, 8), (2, 2, 32)])])
def test_head_blocks(op, shapes):
    signature = blocks.head_signature(Head(op, (), 16), shapes, num_classes=7)
    model = block_model.block_model(signature)
    assert [tuple(t.shape[1:]) for t in model.inputs] == shapes
    assert tuple(model.output.shape) == (1, 8, 8, 7)


def test_bad_signatures_are_refused_with_the_key():
    with pytest.raises(ValueError, match="'teleport' is not a cell op"):
        block_model.block_model(BlockSignature("teleport", (8, 8, 4), (8, 8, 4)))
    with pytest.raises(ValueError, match="no value for the mbconv field 'se'"):
        blocks.cell_from_signature(BlockSignature("mbconv", (8, 8, 4), (8, 8, 4), width=4))
    with pytest.raises(ValueError, match=r"the layer gives output \(8, 8, 4\), not \(8, 8, 5\)"):
        block_model.block_model(BlockSignature("conv", (8, 8, 4), (8, 8, 5), kernel=3, width=4,
                                          extra={"act": "relu"}))


@pytest.mark.slow
def test_sum_of_blocks_is_close_to_the_network():
    # wide enough that the blocks outweigh the network's fixed cost per invoke (about 0.15 ms on an AMD EPYC):
    # at widths 16-32 that cost alone put the network at 1.7x its blocks (0.37 ms against 0.21), here 1.1x
    genotype = schema_io.loads("""
    name: convnet
    branches:
      - name: main
        source: null
        cells:
          - {op: conv, width: 32, stride: 2}
          - {op: mbconv, width: 64, stride: 2, expansion: 6.0}
          - {op: mbconv, width: 64, expansion: 6.0}
          - {op: conv, width: 96, kernel: 3}
    head: {op: light, inputs: [{branch: main}], width: 96}
    """)
    size = (96, 96)
    signatures = blocks.signatures_of(genotype, size, 5)
    flatbuffers = [tflite_convert.convert(block_model.block_model(s), "int8") for s in signatures]
    images = tflite_convert.random_representative([(1, *size, 3)], low=0.0, high=255.0)
    network = tflite_convert.convert(builder.build_model(genotype, 5, size, batch_size=1), "int8",
                                     representative=images)
    # interleaved, so machine noise hits the blocks and the network alike
    *parts, whole = measure_interleaved([*flatbuffers, network], 1, min_runs=30, max_runs=200)
    total = sum(record.median_ms for record in parts)
    assert 0.6 < whole.median_ms / total < 1.6, (whole.median_ms, total)


def test_sampling_skips_networks_the_builder_refuses():
    from mobileseg.arch.genotype import Branch, Genotype
    from mobileseg.arch.ops.convolutions import Conv

    def network(width):  # made directly: the validator would refuse the width-16 one
        return Genotype("n", (Branch("main", None, (Conv(width=width, stride=2),)),),
                        Head("light", (Ref("main"),), 8))

    class Space:
        source = "fake.yaml"
        drawn = iter([network(16), network(16), network(8)])

        def sample(self, rng):
            return next(self.drawn)

    genotype, skipped = block_model.sample_buildable(Space(), None, (16, 16), 3)
    assert skipped == 2 and genotype.branches[0].cells[0].width == 8
    assert not block_model.buildable(network(16), (16, 16), 3)
