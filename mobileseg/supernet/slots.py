"""The parts of a supernet plan: cell and branch slots, their groups, references and the head.

`mobileseg.supernet.plan.SupernetPlan` reads a space into these records (no Keras here). A
`Group` is the alternatives of one slot that share one layer; `structure_key` says what they
must agree on (every field of the op but the elastic ones, see the plan's module doc).

Example:
    >>> from mobileseg.arch.ops.convolutions import MBConv
    >>> structure_key(MBConv(width=8, kernel=3), 8) == structure_key(MBConv(width=16, kernel=5), 8)
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mobileseg.arch.genotype import Cell
from mobileseg.arch.ops.registry import op_spec
from mobileseg.arch.schema_io import GenotypeError


@dataclass
class RefSlot:
    """A reference (fork point, context or head input) and the cells it may point to."""

    path: str
    candidates: list[tuple[str, int]]
    literals: list[dict]

    def index_of(self, resolved: tuple[str, int], what: str) -> int:
        if resolved not in self.candidates:
            raise GenotypeError(f"{what}: cell {resolved} is not one of this supernet's candidates "
                                f"{self.candidates} at {self.path}")
        return self.candidates.index(resolved)


@dataclass
class Group:
    """Alternatives of one slot that share one layer (same structure, elastic fields differ)."""

    key: tuple
    variants: list[dict]
    wide: Cell | None = None
    kernel_elastic: bool = True


@dataclass
class CellSlot:
    """One cell position ``(branch, index)`` of the space."""

    branch: str
    index: int
    path: str
    variants: list[dict]
    stride: int
    optional: bool
    groups: list[Group] = field(default_factory=list)
    source: RefSlot | None = None
    context: RefSlot | None = None
    in_widths: set[int] = field(default_factory=set)
    out_widths: set[int] = field(default_factory=set)
    context_widths: set[int] = field(default_factory=set)
    size: tuple[int, int] = (0, 0)
    offset: int = 0

    @property
    def name(self) -> str:
        return f"{self.branch}_{self.index}"

    @property
    def in_max(self) -> int:
        return max(self.in_widths)

    @property
    def out_max(self) -> int:
        return max(self.out_widths)

    @property
    def context_max(self) -> int:
        return max(self.context_widths) if self.context_widths else 0

    @property
    def absent_index(self) -> int:
        """The ``op`` value of a slot whose branch the genotype dropped."""
        return len(self.groups)


@dataclass
class BranchSlot:
    """A branch position: its name, whether a genotype may drop it, its source and cells."""

    name: str
    path: str
    optional: bool
    source: RefSlot | None
    cells: list[CellSlot]


@dataclass
class HeadPlan:
    """The head: op, its (possibly droppable) inputs, widths."""

    op: str
    inputs: list[RefSlot]
    input_optional: list[bool]
    widths: list[int]
    can_be_single: bool
    offset: int = 0

    @property
    def width_max(self) -> int:
        return max(self.widths)


def structure_key(cell: Cell, in_width: int, kernel_elastic: bool = True) -> tuple:
    """What must agree for two variants of a slot to share one layer (its op's fields but the elastic ones)."""
    spec = op_spec(cell.OP)
    elastic = set(spec.elastic_fields) | {"context"}
    fields = tuple((f.name, getattr(cell, f.name)) for f in dataclasses.fields(cell) if f.name not in elastic)
    key = (cell.OP, *fields, *spec.structure(cell, in_width))
    if not kernel_elastic:
        key += (("kernel", cell.kernel),)
    return key
