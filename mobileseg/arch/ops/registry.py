"""The op registry: every genotype op and its `OpSpec`, gathered from the op family modules.

Adding an op is one module in this package (its genotype dataclass and an ``OPS`` tuple of
`OpSpec`) listed in `FAMILIES`, plus its test (README, "Adding an op"); the builder, the schema
checks, the search space, the supernet, the latency table and the run report find it here.

Example:
    >>> spec = op_spec("mbconv")
    >>> spec.cell.__name__, spec.latency_block, op_spec("skip").latency_block
    ('MBConv', True, False)
"""

from __future__ import annotations

from mobileseg.arch.ops import convolutions, efficient_attention, fuse, mhsa, rtformer, sea_attention, skip
from mobileseg.arch.ops.spec import OpSpec

FAMILIES = (convolutions, sea_attention, rtformer, efficient_attention, mhsa, fuse, skip)
"""The op family modules, each with an ``OPS`` tuple."""

OPS: dict[str, OpSpec] = {spec.op: spec for family in FAMILIES for spec in family.OPS}
"""Every registered op by name."""

CELL_TYPES = {op: spec.cell for op, spec in OPS.items()}
"""The genotype dataclass of every op, by the name a YAML file uses."""

ATTENTION_OPS = tuple(op for op, spec in OPS.items() if spec.family == "attention")
"""The ops of the ``attention`` family (they need a feature map, not the image)."""


def op_spec(op: str) -> OpSpec:
    """The `OpSpec` of ``op``.

    Raises:
        ValueError: no op of that name is registered.
    """
    try:
        return OPS[op]
    except KeyError:
        raise ValueError(f"no op {op!r} is registered; registered: {', '.join(OPS)}") from None
