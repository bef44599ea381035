"""Block signatures of genotypes: the latency-table keys of a network's blocks."""

from mobileseg.arch import schema_io
from mobileseg.latency import blocks
from mobileseg.latency.signature import BlockSignature

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
    from mobileseg.arch.ops.convolutions import MBConv

    variants = [MBConv(width=16), MBConv(width=16, se=True), MBConv(width=16, act="hard_swish"),
                MBConv(width=16, expanded=40), MBConv(width=16, expansion=6.0), MBConv(width=16, kernel=5)]
    keys = {blocks.cell_signature(cell, (8, 8, 16), (8, 8, 16)).key for cell in variants}
    assert len(keys) == len(variants)
