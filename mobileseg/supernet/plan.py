"""The static layout of a supernet, read from a search space tree (no Keras here).

A supernet runs every network of a space with ONE graph. This module works out,
from the space alone, what that graph needs and how a genotype is told to it:

- **cell slots**: one per cell position ``(branch, index)`` of the space (a ``null``
  alternative may drop a whole branch, never a single cell: depth is ``{op: skip}``; a
  cell that reads a branch a genotype may drop also gets ``skip``, which is what the
  space makes of it then).
- **groups**: the alternatives of a slot, grouped by *structure*. Fields that only
  change channel counts or a kernel's size are *elastic* (``width``, ``kernel``,
  ``expansion``/``expanded``, ``mlp_ratio``: each op's ``elastic_fields`` in
  `mobileseg.arch.ops`): the variants differing only there share
  one layer built at the largest value, and a narrower variant uses its first
  channels (kernels: the centre). Every other field (op, stride, heads, ``sr_ratio``,
  ``se``, activation, ...) makes its own group, i.e. its own layer.
- **reference slots**: a fork point (``source``), a ``context`` or a head input whose
  cell is a choice lists its candidate cells; they must all have the same stride.
- **the arch vector**: one ``int32`` per (slot, field) in a fixed order (`layout`):
  which group runs, the active input/output widths, kernel, hidden widths, residual,
  which candidate a reference takes, which head inputs are present. `SupernetPlan.encode`
  computes it from a *materialized genotype*, so it is exact for whatever the space
  allows, and a genotype outside the space is refused (`space.encode`).

The records of slots, groups, references and the head, and the grouping rule
(`structure_key`), are in `mobileseg.supernet.slots`.

A space can be a supernet when every alternative at a position keeps the same stride
and every reference's candidates share one stride; otherwise `SupernetError` names the
choice path.

Example:
    >>> from mobileseg.arch.space import SearchSpace
    >>> space = SearchSpace.from_text('''
    ... name: tiny
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: {choice: [8, 16]}, stride: 2}
    ...       - choice: [{op: mbconv, width: 16, kernel: {choice: [3, 5]}}, {op: skip}]
    ... head: {op: light, inputs: [{branch: main}], width: 16}
    ... ''')
    >>> plan = SupernetPlan(space, (32, 32))
    >>> [(s.name, len(s.groups), s.in_max, s.out_max) for s in plan.slots]
    [('main_0', 1, 3, 16), ('main_1', 2, 16, 16)]
    >>> plan.slots[1].groups[0].wide
    MBConv(width=16, kernel=5, stride=1, expansion=4.0, se=False, act='relu', expanded=64)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mobileseg.arch import schema_io
from mobileseg.arch.genotype import Cell, Genotype
from mobileseg.arch.ops.registry import ATTENTION_OPS, op_spec
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.arch.space_tree import expand, is_choice
from mobileseg.supernet.slots import BranchSlot, CellSlot, Group, HeadPlan, RefSlot, structure_key

CELL_FIELDS = ("op", "in", "out", "kernel", "hidden", "se", "residual", "ctx", "ctx_w", "src")
"""The arch-vector fields of every cell slot (see `SupernetPlan.encode`)."""

HEAD_OPS_WITH_DROPPABLE_INPUTS = ("light", "mlp")
MAX_VARIANTS = 4096


class SupernetError(GenotypeError):
    """A search space that cannot be run as one weight-sharing supernet; the message names the choice path."""


def cell_from_dict(data: dict, source: str = "<space>", path: str = "") -> Cell:
    """A cell dataclass from a concrete, normalized space dict, checked like a genotype's cell.

    Raises:
        GenotypeError: a value the schema does not allow (naming ``source`` and ``path``).
    """
    return schema_io._cell_from_dict(data, source, path)


class SupernetPlan:
    """Static analysis of a space for a supernet at one input size.

    Args:
        space: the search space.
        input_size: (height, width) of the images the supernet runs on.

    Raises:
        SupernetError: the space cannot be one supernet (the message names the choice path).
    """

    def __init__(self, space: SearchSpace, input_size: tuple[int, int]):
        self.space = space
        self.input_size = tuple(int(v) for v in input_size)
        self.source = space.source
        tree = space.tree
        self.branches: list[BranchSlot] = [self._branch(item, i) for i, item in enumerate(tree["branches"])]
        self._by_name = {b.name: b for b in self.branches}
        if len(self._by_name) != len(self.branches):
            self._fail("branches", "branch names must be distinct")
        for branch in self.branches:
            self._resolve_refs(branch)
        changed = True
        while changed:  # a branch forking from an optional branch is dropped with it
            changed = False
            for branch in self.branches:
                if not branch.optional and branch.source is not None and any(
                        self._by_name[b].optional for b, _ in branch.source.candidates):
                    branch.optional = changed = True
        for branch in self.branches:
            for cell in branch.cells:
                cell.optional = branch.optional
                reads_optional = cell.context is not None and any(
                    self._by_name[b].optional for b, _ in cell.context.candidates)
                if reads_optional and not any(v["op"] == "skip" for v in cell.variants):
                    cell.variants.append({"op": "skip"})  # the space makes a cell reading a dropped branch skip
        self.head = self._head(tree["head"])
        self._strides: dict[tuple[str, int], int] = {}
        self.slots: list[CellSlot] = self._order()
        for slot in self.slots:
            self._analyse(slot)
        self._head_checks()
        self.layout: dict[str, int] = {}
        for slot in self.slots:
            slot.offset = len(self.layout)
            for name in CELL_FIELDS:
                self.layout[f"{slot.name}.{name}"] = len(self.layout)
        self.head.offset = len(self.layout)
        self.layout["head.width"] = len(self.layout)
        self.layout["head.single"] = len(self.layout)
        for i in range(len(self.head.inputs)):
            self.layout[f"head.in{i}.present"] = len(self.layout)
            self.layout[f"head.in{i}.ref"] = len(self.layout)

    # -- reading the tree ---------------------------------------------------------------------
    def _fail(self, path: str, message: str):
        raise SupernetError(f"{self.source}: {path}: {message}")

    def _branch(self, item, position: int) -> BranchSlot:
        path = f"branches[{position}]"
        optional = False
        if is_choice(item):
            options = item["choice"]
            real = [(k, o) for k, o in enumerate(options) if o is not None]
            if len(real) != 1:
                self._fail(path, "a supernet needs one branch per position; choose cells inside it, or "
                                 "write an optional branch as {choice: [null, BRANCH]}")
            optional = len(real) < len(options)
            index, item = real[0]
            path = f"{path}/{index}"
        if not isinstance(item.get("name"), str):
            self._fail(f"{path}.name", "a supernet needs a fixed branch name")
        cells = []
        for i, node in enumerate(item["cells"]):
            cell_path = f"{path}.cells[{i}]"
            if is_choice(node) and None in node["choice"]:
                self._fail(cell_path, "a null alternative cannot drop a single cell in a supernet; "
                                      "use {op: skip} for depth")
            variants = expand(node)
            if len(variants) > MAX_VARIANTS:
                self._fail(cell_path, f"{len(variants)} combinations; a supernet slot takes at most {MAX_VARIANTS}")
            for variant in variants:
                if not isinstance(variant.get("op"), str):
                    self._fail(cell_path, "every alternative needs a fixed op")
            strides = sorted({cell_from_dict(v, self.source, cell_path).downsampling() for v in variants})
            if len(strides) > 1:
                self._fail(cell_path, f"alternatives have different strides {strides}; a supernet needs "
                                      "one stride per position")
            cells.append(CellSlot(item["name"], i, cell_path, variants, strides[0], optional))
        source = None
        if item.get("source") is not None:
            source = RefSlot(f"{path}.source", [], expand(item["source"]))
        return BranchSlot(item["name"], path, optional, source, cells)

    def _cell_count(self, branch: str, path: str) -> int:
        if branch not in self._by_name:
            self._fail(path, f"unknown branch {branch!r}; branches: {', '.join(self._by_name)}")
        return len(self._by_name[branch].cells)

    def _ref_slot(self, path: str, literals: list[dict]) -> RefSlot:
        slot = RefSlot(path, [], [])
        for literal in literals:
            if not isinstance(literal, dict) or not isinstance(literal.get("branch"), str):
                self._fail(path, f"a supernet needs references with a fixed branch, got {literal!r}")
            count = self._cell_count(literal["branch"], path)
            if not -count <= literal["cell"] < count:
                self._fail(path, f"branch {literal['branch']!r} has {count} cells; "
                                 f"cell {literal['cell']} does not exist")
            resolved = (literal["branch"], literal["cell"] % count)
            if resolved not in slot.candidates:
                slot.candidates.append(resolved)
                slot.literals.append(literal)
        return slot

    def _resolve_refs(self, branch: BranchSlot) -> None:
        if branch.source is not None:
            branch.source = self._ref_slot(branch.source.path, branch.source.literals)
            branch.cells[0].source = branch.source
        for cell in branch.cells:
            contexts = [v["context"] for v in cell.variants if "context" in v]
            if contexts:
                cell.context = self._ref_slot(f"{cell.path}.context", contexts)

    def _head(self, node) -> HeadPlan:
        if is_choice(node) or is_choice(node.get("op")):
            self._fail("head.op", "a supernet needs a fixed head op (its width may be a choice)")
        inputs = [self._ref_slot(f"head.inputs[{i}]", expand(ref)) for i, ref in enumerate(node["inputs"])]
        for ref in inputs:
            if len({b for b, _ in ref.candidates}) > 1:
                self._fail(ref.path, "a head input may choose its cell, not its branch, in a supernet")
        optional = [any(self._by_name[b].optional for b, _ in ref.candidates) for ref in inputs]
        widths = sorted({w for w in expand(node["width"])})
        op = node["op"]
        if optional and optional[0]:
            self._fail("head.inputs[0]", "the head's first input sets the output resolution; it cannot be "
                                         "in an optional branch")
        if any(optional) and op not in HEAD_OPS_WITH_DROPPABLE_INPUTS:
            self._fail("head.inputs", f"the {op} head takes a fixed number of inputs; none may be in an "
                                      "optional branch")
        can_be_single = op == "light" and len(inputs) > 1 and all(optional[1:])
        return HeadPlan(op, inputs, optional, widths, can_be_single)

    # -- analysis -------------------------------------------------------------------------------
    def slot(self, branch: str, index: int) -> CellSlot:
        return self._by_name[branch].cells[index]

    def _order(self) -> list[CellSlot]:
        """Cell slots in an order where every slot comes after all it may read."""
        order, state = [], {}

        def visit(slot: CellSlot, path: str):
            key = (slot.branch, slot.index)
            if state.get(key) == "done":
                return
            if state.get(key) == "visiting":
                self._fail(path, f"cycle: {slot.path} may depend on itself through its references")
            state[key] = "visiting"
            for dep in self._dependencies(slot):
                visit(self.slot(*dep), slot.path)
            state[key] = "done"
            order.append(slot)

        for branch in self.branches:
            for slot in branch.cells:
                visit(slot, slot.path)
        return order

    def _dependencies(self, slot: CellSlot) -> list[tuple[str, int]]:
        deps = []
        if slot.index > 0:
            deps.append((slot.branch, slot.index - 1))
        elif slot.source is not None:
            deps.extend(slot.source.candidates)
        if slot.context is not None:
            deps.extend(slot.context.candidates)
        return deps

    def _ref_stride_and_size(self, ref: RefSlot) -> tuple[int, tuple[int, int]]:
        strides = {self._strides[c] for c in ref.candidates}
        if len(strides) > 1:
            self._fail(ref.path, f"candidates {ref.candidates} have different strides {sorted(strides)}; a "
                                 "supernet needs one stride per reference")
        return strides.pop(), self.slot(*ref.candidates[0]).size

    def _ref_widths(self, ref: RefSlot) -> set[int]:
        return set().union(*(self.slot(*c).out_widths for c in ref.candidates))

    def _analyse(self, slot: CellSlot) -> None:
        if slot.index > 0:
            previous = self.slot(slot.branch, slot.index - 1)
            in_stride, size, slot.in_widths = self._strides[(slot.branch, slot.index - 1)], previous.size, \
                set(previous.out_widths)
        elif slot.source is None:
            in_stride, size, slot.in_widths = 1, self.input_size, {3}
        else:
            in_stride, size = self._ref_stride_and_size(slot.source)
            slot.in_widths = self._ref_widths(slot.source)
        self._strides[(slot.branch, slot.index)] = in_stride * slot.stride
        slot.size = tuple(-(-s // slot.stride) for s in size)
        if slot.context is not None:
            self._ref_stride_and_size(slot.context)
            slot.context_widths = self._ref_widths(slot.context)
        cells = [cell_from_dict(v) for v in slot.variants]
        for cell in cells:
            if cell.OP in ATTENTION_OPS and slot.in_max < 2:
                self._fail(slot.path, f"{cell.OP} needs a feature map, not the image")
        slot.out_widths = {cell.out_width(w) for cell in cells for w in slot.in_widths}
        self._group(slot, cells)

    def _group(self, slot: CellSlot, cells: list[Cell]) -> None:
        by_key: dict[tuple, Group] = {}
        pairs: dict[tuple, list[tuple[Cell, int]]] = {}
        for variant, cell in zip(slot.variants, cells):
            for in_width in sorted(slot.in_widths):
                key = structure_key(cell, in_width, kernel_elastic=True)
                if key not in by_key:
                    by_key[key] = Group(key, [])
                    pairs[key] = []
                if variant not in by_key[key].variants:
                    by_key[key].variants.append(variant)
                pairs[key].append((cell, in_width))
        groups = []
        for key, group in by_key.items():
            spec = op_spec(key[0])
            kernels = {c.kernel for c, _ in pairs[key] if "kernel" in spec.elastic_fields}
            stride = slot.stride if spec.strided_kernel else 1
            if kernels and min(kernels) < stride:
                # Centre-cropping a kernel smaller than the stride shifts "same" padding: split by kernel.
                for kernel in sorted(kernels):
                    sub = [(c, w) for c, w in pairs[key] if c.kernel == kernel]
                    variants = [v for v in group.variants if v["kernel"] == kernel]
                    groups.append(self._finish_group(slot, Group(key + (("kernel", kernel),), variants, None,
                                                                 False), sub))
            else:
                groups.append(self._finish_group(slot, group, pairs[key]))
        slot.groups = groups

    def _finish_group(self, slot: CellSlot, group: Group, pairs: list[tuple[Cell, int]]) -> Group:
        cells = [c for c, _ in pairs]
        base = cells[0]
        spec = op_spec(base.OP)
        elastic = spec.elastic_fields
        updates = {name: max(getattr(c, name) for c in cells) for name in elastic
                   if name != "kernel" or group.kernel_elastic}
        if "expanded" in elastic:  # an explicit hidden width: the widest any variant derives
            hidden = max(spec.hidden_width(c, w) for c, w in pairs)
            has_expand = ("has_expand", True) in group.key
            if has_expand and hidden == slot.in_max:
                self._fail(slot.path, f"the widest hidden width {hidden} equals the widest input width; "
                                      "the shared MBConv would lose its expansion conv")
            updates["expanded"] = hidden
        wide = dataclasses.replace(base, **updates)
        heads = getattr(wide, "heads", None)
        if spec.split_heads and slot.in_max % heads:
            self._fail(slot.path, f"{wide.OP}: {heads} heads do not divide the widest input width "
                                  f"{slot.in_max} the shared layer is built for")
        group.wide = wide
        return group

    def _head_checks(self) -> None:
        for ref in self.head.inputs:
            self._ref_stride_and_size(ref)

    # -- genotypes ------------------------------------------------------------------------------
    def encode(self, genotype: Genotype) -> np.ndarray:
        """The arch vector (int32, ``len(layout)``) that runs ``genotype``.

        Raises:
            GenotypeError: the genotype is not in the space.
        """
        in_space(self.space, genotype)
        shapes = genotype.cell_shapes(self.input_size)
        vector = np.zeros(len(self.layout), np.int32)
        present = {b.name for b in genotype.branches}
        for slot in self.slots:
            at = slot.offset
            if slot.branch not in present:
                vector[at] = slot.absent_index
                continue
            branch = genotype.branch(slot.branch)
            cell = branch.cells[slot.index]
            shape = shapes[(slot.branch, slot.index)]
            in_width, out_width = shape.input[2], shape.output[2]
            vector[at] = self.group_index(slot, cell, in_width)
            vector[at + 1] = in_width
            vector[at + 2] = out_width
            vector[at + 3] = getattr(cell, "kernel", 0)
            spec = op_spec(cell.OP)
            vector[at + 4] = spec.hidden_width(cell, in_width)
            vector[at + 5] = spec.se_width(cell, in_width)
            vector[at + 6] = int(spec.residual(cell, in_width))
            if slot.context is not None and cell.context_ref() is not None:
                vector[at + 7] = slot.context.index_of(genotype.resolve(cell.context_ref()), slot.path)
                vector[at + 8] = shape.context[2]
            if slot.index == 0 and slot.source is not None:
                vector[at + 9] = slot.source.index_of(genotype.resolve(branch.source), slot.path)
        head = genotype.head
        at = self.head.offset
        vector[at] = head.width
        present_inputs = self.present_head_inputs(genotype)
        vector[at + 1] = int(self.head.can_be_single and len(present_inputs) == 1)
        for k, i in enumerate(present_inputs):
            vector[at + 2 + 2 * i] = 1
            vector[at + 3 + 2 * i] = self.head.inputs[i].index_of(genotype.resolve(head.inputs[k]), "head")
        return vector

    def present_head_inputs(self, genotype: Genotype) -> list[int]:
        """Indices into the space's head inputs of the genotype's head inputs, in order."""
        present = {b.name for b in genotype.branches}
        indices = [i for i, ref in enumerate(self.head.inputs) if ref.candidates[0][0] in present]
        if len(indices) != len(genotype.head.inputs):
            raise GenotypeError(f"genotype {genotype.name!r}: its head inputs do not match the space's")
        return indices

    def group_index(self, slot: CellSlot, cell: Cell, in_width: int) -> int:
        """Which group (shared layer) of ``slot`` runs ``cell`` at ``in_width`` input channels."""
        for elastic in (True, False):
            key = structure_key(cell, in_width, kernel_elastic=elastic)
            for index, group in enumerate(slot.groups):
                if group.key == key:
                    return index
        raise GenotypeError(f"{slot.path}: {cell} at {in_width} input channels is not in this supernet")


def in_space(space: SearchSpace, genotype: Genotype) -> dict:
    """``space.encode(genotype)`` whatever the genotype's name (the space compares names too).

    Raises:
        GenotypeError: the genotype is not in the space.
    """
    try:
        return space.encode(dataclasses.replace(genotype, name=space.tree["name"]))
    except GenotypeError:
        raise GenotypeError(f"genotype {genotype.name!r} is not in the space {space.source}") from None
