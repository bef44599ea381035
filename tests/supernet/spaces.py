"""Search spaces for the supernet tests: tiny, and one that has every op of the schema."""

from pathlib import Path

from mobileseg.arch.space import SearchSpace

ROOT = Path(__file__).resolve().parents[2]

TINY = """
name: tiny
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: {choice: [8, 12]}, stride: 2}
      - {op: mbconv, width: 16, stride: 2, expansion: 2.0}
      - choice:
          - {op: mbconv, width: {choice: [8, 16]}, kernel: {choice: [3, 5]}, expansion: 2.0}
          - {op: skip}
  - choice:
      - null
      - name: low
        source: {branch: main, cell: -1}
        cells:
          - {op: conv, width: {choice: [16, 24]}, stride: 2}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: {choice: [8, 16]}}
"""
"""Two branches, widths, kernels, depth and an optional branch: short traces for trainer tests."""

ALL_OPS = """
name: allops
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: {choice: [8, 12]}, kernel: {choice: [3, 5]}, stride: 2}
      - choice:
          - {op: mbconv, width: {choice: [12, 16]}, kernel: {choice: [3, 5]}, stride: 2,
             expansion: {choice: [2.0, 3.0]}}
          - {op: mbconv, width: {choice: [12, 16]}, stride: 2, se: true, act: hard_swish}
          - {op: patch_embed, width: {choice: [12, 16]}, kernel: {choice: [3, 5]}, stride: 2}
          - {op: zoomed_conv, width: {choice: [12, 16]}, kernel: {choice: [3, 5]}, stride: 2}
      - choice:
          - {op: mbconv, width: {choice: [12, 16]}, kernel: {choice: [3, 5]}, expansion: {choice: [2.0, 3.0]}}
          - {op: sea_attention, heads: 2, key_dim: 4, mlp_ratio: {choice: [1.0, 2.0]}}
          - {op: efficient_attention, heads: 2, sr_ratio: {choice: [1, 2]}, mlp_ratio: {choice: [1.0, 2.0]}}
          - {op: mhsa, heads: 2, key_dim: 4}
          - {op: gfa_attention, heads: 2, units: 8}
          - {op: zoomed_conv, width: {choice: [12, 16]}}
          - {op: skip}
      - choice:
          - {op: efficient_attention, heads: 2, sr_ratio: 2, tome_mode: kv_bsm, tome_ratio: 0.5}
          - {op: efficient_attention, heads: 2, tome_mode: q_pool, tome_ratio: 0.75}
          - {op: efficient_attention, heads: 2, tome_mode: q_bsm, tome_ratio: 0.5}
          - {op: conv, width: {choice: [12, 16]}, kernel: 1}
          - {op: skip}
      - choice:
          - {op: skip}
          - {op: fuse, context: {branch: low, cell: {choice: [-1, 0]}}, width: {choice: [8, 16]},
             mode: {choice: [sum, gate]}}
          - {op: cross_attention, context: {branch: low, cell: -1}, context_size: 2}
  - choice:
      - null
      - name: low
        source: {branch: main, cell: {choice: [1, 2, 3]}}
        cells:
          - {op: mbconv, width: {choice: [16, 24]}, stride: 2, expansion: 2.0}
          - choice:
              - {op: mhsa, heads: 2, key_dim: 4}
              - {op: gfa_attention, heads: 2, units: 8}
              - {op: sea_attention, heads: 2, key_dim: 4}
              - {op: skip}
head: {op: HEAD, inputs: [{branch: main}, {branch: low}], width: {choice: [12, 16]}}
"""
"""Every cell op (token-merging modes, fusions, fork and context choices included)."""


def tiny() -> SearchSpace:
    return SearchSpace.from_text(TINY, "tiny.yaml")


def all_ops(head: str = "light") -> SearchSpace:
    return SearchSpace.from_text(ALL_OPS.replace("HEAD", head), f"allops-{head}.yaml")


def demo() -> SearchSpace:
    return SearchSpace.load(ROOT / "search_space" / "demo.yaml")
