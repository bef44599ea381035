"""Genotypes: an architecture as frozen, versioned data (docs/architecture.md, section 3).

A network is a set of named **branches**. Each branch is a sequence of **cells**
(one block each) and starts either from the image (the first branch) or from the
output of a cell of another branch (``source``). A cell may read a second
branch's feature through ``context`` (fusion, cross-resolution attention), and
the **head** reads any cells' outputs. This one schema writes

- single-path networks (MobileNetV3 + LR-ASPP, SegFormer: one branch, the head
  reads several of its cells);
- SeaFormer's two branches (a context branch forks at 1/8, goes to 1/64 and gates
  the detail branch through fusion cells);
- RTFormer's dual resolution (cross-resolution attention cells take the low
  branch as context);
- HyCTAS' and FasterSeg's lattices (branches at 1/8, 1/16 and 1/32 forking from
  one another, fused in the head).

References are ``{branch: NAME, cell: INDEX}``, ``cell: -1`` meaning the last.
Attention cells keep their input width; other cells set it with ``width``.

The cell dataclasses (``Conv``, ``MBConv``, ...) live with everything else about their op in
`mobileseg.arch.ops` (`mobileseg.arch.ops.registry.CELL_TYPES`); `Cell` is their base.

Example:
    >>> from mobileseg.arch.ops.convolutions import Conv, MBConv
    >>> g = Genotype(name="tiny", branches=(
    ...     Branch(name="main", source=None, cells=(
    ...         Conv(width=8, kernel=3, stride=2), MBConv(width=8, kernel=3, stride=1, expansion=2.0))),),
    ...     head=Head(op="light", inputs=(Ref("main", -1),), width=8))
    >>> g.cell_strides()["main"]
    (2, 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

SCHEMA_VERSION = 1

KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)
HEAD_OPS = ("light", "mlp", "lraspp")


class GenotypeError(ValueError):
    """A genotype file or dict that is not a valid network; the message names file and key path.

    Raised by the schema reader (`mobileseg.arch.schema_io`, where callers usually import it
    from), the search space and the builder.
    """


def choices(*values) -> dict:
    """A field's metadata: its value must be one of ``values`` (checked by `mobileseg.arch.schema_io`)."""
    return {"choices": tuple(values)}


def positive() -> dict:
    """A field's metadata: its value must be above 0 (checked by `mobileseg.arch.schema_io`)."""
    return {"positive": True}


@dataclass(frozen=True)
class Ref:
    """The output of cell ``cell`` of branch ``branch`` (``-1``: the last cell)."""

    branch: str
    cell: int = -1


@dataclass(frozen=True)
class Cell:
    """Base of all cells; ``OP`` is the name a YAML file uses."""

    OP: ClassVar[str] = ""

    def downsampling(self) -> int:
        """Spatial stride of the cell (1 for cells that cannot stride)."""
        return self.__dict__.get("stride", 1)

    def context_ref(self) -> Ref | None:
        """The second input of the cell, if it has one."""
        return self.__dict__.get("context")

    def out_width(self, in_width: int) -> int:
        """Output channels given the input channels."""
        return self.__dict__.get("width", in_width)


@dataclass(frozen=True)
class Branch:
    """A named sequence of cells, from the image (``source: null``) or from another branch's cell."""

    name: str
    source: Ref | None
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Head:
    """The segmentation head: ``light`` (SeaFormer), ``mlp`` (SegFormer) or ``lraspp`` (MobileNetV3).

    ``inputs[0]`` is the finest feature and sets the logits' resolution; ``aux``
    lists cells that get an auxiliary head during training.
    """

    op: str = field(metadata=choices(*HEAD_OPS))
    inputs: tuple[Ref, ...]
    width: int = field(metadata=positive())
    aux: tuple[Ref, ...] = ()


@dataclass(frozen=True)
class CellShape:
    """Shapes (H, W, C) around one cell: its input, its output and its context input, if any."""

    input: tuple[int, int, int]
    output: tuple[int, int, int]
    context: tuple[int, int, int] | None


@dataclass(frozen=True)
class Genotype:
    """A whole network: branches and a head (see the module docstring)."""

    name: str
    branches: tuple[Branch, ...]
    head: Head
    schema_version: int = SCHEMA_VERSION

    def branch(self, name: str) -> Branch:
        """The branch called ``name`` (KeyError if there is none)."""
        for branch in self.branches:
            if branch.name == name:
                return branch
        raise KeyError(name)

    def resolve(self, ref: Ref) -> tuple[str, int]:
        """``ref`` with a non-negative cell index."""
        cells = self.branch(ref.branch).cells
        return ref.branch, ref.cell % len(cells)

    def cell_strides(self) -> dict[str, tuple[int, ...]]:
        """Output stride (relative to the image) of every cell, per branch."""
        strides: dict[str, tuple[int, ...]] = {}

        def of_branch(name: str) -> tuple[int, ...]:
            if name not in strides:
                branch = self.branch(name)
                start = 1 if branch.source is None else stride_of(branch.source)
                out, current = [], start
                for cell in branch.cells:
                    current *= cell.downsampling()
                    out.append(current)
                strides[name] = tuple(out)
            return strides[name]

        def stride_of(ref: Ref) -> int:
            name, index = self.resolve(ref)
            return of_branch(name)[index]

        for branch in self.branches:
            of_branch(branch.name)
        return strides

    def cell_shapes(self, input_size: tuple[int, int]) -> dict[tuple[str, int], CellShape]:
        """Input, output and context shapes (H, W, C) of every cell for an image of ``input_size``.

        Strided cells round up (``ceil(H / stride)``), as "same" padding does. The genotype
        must be valid (``schema_io.validate``): references are not checked here.

        Example:
            >>> from mobileseg.arch.ops.convolutions import Conv
            >>> from mobileseg.arch.ops.skip import Skip
            >>> g = Genotype(name="s", branches=(Branch("m", None, (Conv(width=8, stride=2), Skip())),),
            ...              head=Head(op="light", inputs=(Ref("m"),), width=8))
            >>> g.cell_shapes((45, 60))[("m", 1)]
            CellShape(input=(23, 30, 8), output=(23, 30, 8), context=None)
        """
        shapes: dict[tuple[str, int], CellShape] = {}

        def output_of(ref: Ref) -> tuple[int, int, int]:
            key = self.resolve(ref)
            if key not in shapes:
                name, index = key
                branch = self.branch(name)
                if index > 0:
                    x = output_of(Ref(name, index - 1))
                elif branch.source is None:
                    x = (*input_size, 3)
                else:
                    x = output_of(branch.source)
                cell = branch.cells[index]
                stride = cell.downsampling()
                context = cell.context_ref()
                shapes[key] = CellShape(
                    input=x, output=(-(-x[0] // stride), -(-x[1] // stride), cell.out_width(x[2])),
                    context=None if context is None else output_of(context))
            return shapes[key].output

        for branch in self.branches:
            for index in range(len(branch.cells)):
                output_of(Ref(branch.name, index))
        return shapes

    def replace_cells(self, function) -> "Genotype":
        """A copy with every cell replaced by ``function(branch_name, index, cell)``."""
        branches = tuple(dataclasses.replace(b, cells=tuple(function(b.name, i, c) for i, c in enumerate(b.cells)))
                         for b in self.branches)
        return dataclasses.replace(self, branches=branches)
