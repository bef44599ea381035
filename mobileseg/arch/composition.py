"""What a network is made of, at a glance: its ops per branch, for summaries and README tables.

Example:
    >>> from mobileseg.arch.genotype import Branch, Genotype, Head, Ref
    >>> from mobileseg.arch.ops.convolutions import Conv, MBConv
    >>> from mobileseg.arch.ops.skip import Skip
    >>> g = Genotype(name="tiny", branches=(
    ...     Branch(name="main", source=None, cells=(
    ...         Conv(width=8, kernel=3, stride=2), MBConv(width=8, kernel=3, stride=1, expansion=2.0),
    ...         Skip(), MBConv(width=8, kernel=3, stride=1, expansion=2.0))),),
    ...     head=Head(op="light", inputs=(Ref("main", -1),), width=8))
    >>> composition(g)
    'main: conv, mbconv x2; head: light 8'
"""

from __future__ import annotations

from collections import Counter

from mobileseg.arch.genotype import Genotype


def branch_ops(genotype: Genotype) -> dict[str, str]:
    """``{branch: "conv, mbconv x3, efficient_attention"}``: each op's cells, in order of first
    appearance, skip cells left out (a branch of skips only reads ``-``)."""
    out = {}
    for branch in genotype.branches:
        counts = Counter(cell.OP for cell in branch.cells if cell.OP != "skip")
        out[branch.name] = ", ".join(op if n == 1 else f"{op} x{n}" for op, n in counts.items()) or "-"
    return out


def composition(genotype) -> str:
    """``main: conv, mbconv x3; low: sea_attention x2, mhsa; head: light 128`` (for a network another
    library builds, `mobileseg.arch.external.External`: ``external: NAME``)."""
    if not isinstance(genotype, Genotype):
        return f"external: {genotype.external}"
    parts = [f"{name}: {ops}" for name, ops in branch_ops(genotype).items()]
    return "; ".join([*parts, f"head: {genotype.head.op} {genotype.head.width}"])
