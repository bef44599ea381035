"""Every block a search space can produce at one input size.

`space_signatures` lists every block signature (`mobileseg.latency.blocks`) a search space can
produce at one input size: what ``python -m mobileseg.latency build`` measures. It enumerates
**exactly**: for every combination of the space's branch-level choices (which optional branches
exist, where they fork), it walks the cells in dependency order with the *set* of shapes that can
reach each cell, and takes every alternative of the cell at every such shape (context and head
inputs: every combination of their input sets). That is thousands of times cheaper than the
space (10^20+ genotypes for the default space at ~360 signatures). It never misses a signature;
it can list one that no valid network uses only when the two inputs of a two-input block (or
the head) vary through one shared choice, which the shipped spaces do not do (the tests check
that the enumeration equals the union of many samples). Heads the builder refuses are left out
(`mobileseg.latency.block_model.head_builds`). A space the walk does not support (a cell that a
choice can remove, a whole cell list as a choice, a cycle, or more than `MAX_STRUCTURES` branch
layouts) is covered instead by seeded sampling until `SAMPLE_PATIENCE` draws in a row bring no
new signature; the result says which was done.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import numpy as np

from mobileseg.arch.genotype import HEAD_OPS, Cell, Head, Ref
from mobileseg.arch.space_tree import count, expand, is_choice
from mobileseg.latency.block_model import buildable, head_builds
from mobileseg.latency.blocks import Shape, cell_signature, head_signature, signatures_of
from mobileseg.latency.signature import BlockSignature

MAX_STRUCTURES = 20_000   # branch layouts the exact walk accepts before sampling instead
SAMPLE_PATIENCE = 2_000   # sampling stops after this many draws in a row add nothing new
SAMPLE_MAX_DRAWS = 200_000


@dataclasses.dataclass(frozen=True)
class SpaceSignatures:
    """The blocks a space can produce and how they were found.

    Args:
        signatures: sorted by key, each once.
        method: ``exact`` (the shape walk) or ``sampled``.
        detail: why that method, and its counts.
    """

    signatures: tuple[BlockSignature, ...]
    method: str
    detail: str


class _Unsupported(Exception):
    """A space feature the exact walk does not handle (the message says which)."""


def _ref(data: dict | None) -> Ref | None:
    return None if data is None else Ref(data["branch"], data.get("cell", -1))


class _Walk:
    """The exact shape walk over one space (see the module doc)."""

    def __init__(self, space, input_size: tuple[int, int], num_classes: int, quantization: str):
        from mobileseg.arch import schema_io

        self.space = space
        self.schema_io = schema_io
        self.input_size = tuple(input_size)
        self.num_classes = num_classes
        self.quantization = quantization
        self.cell_options: dict[int, list[Cell]] = {}
        self.unbuildable_heads: set = set()

    def options(self, node, path: str) -> list[Cell]:
        """The valid cells a cell node can be (cached per node)."""
        if id(node) not in self.cell_options:
            if count(node) > MAX_STRUCTURES:
                raise _Unsupported(f"{path} has {count(node)} alternatives")
            cells = []
            for data in expand(node):
                if data is None:
                    raise _Unsupported(f"{path}: a choice can remove the cell (indices would shift)")
                try:
                    cells.append(self.schema_io._cell_from_dict(data, self.space.source, path))
                except self.schema_io.GenotypeError:
                    continue  # never valid: materialize rejects it in every network
            self.cell_options[id(node)] = list(dict.fromkeys(cells))
        return self.cell_options[id(node)]

    def branch_layouts(self) -> list[list[tuple[str, Ref | None, list]]]:
        """Every branch layout: [(name, source, cell nodes)] after pruning dropped sources."""
        slots = []
        for index, node in enumerate(self.space.tree["branches"]):
            alternatives = []
            for option in (node["choice"] if is_choice(node) else [node]):
                if option is None:
                    alternatives.append(None)
                    continue
                if not isinstance(option.get("cells"), list):
                    raise _Unsupported(f"branches[{index}].cells is a choice of whole cell lists")
                skeleton = {k: v for k, v in option.items() if k != "cells"}
                if count(skeleton) > MAX_STRUCTURES:
                    raise _Unsupported(f"branches[{index}] has too many layouts")
                for concrete in expand(skeleton):
                    alternatives.append((concrete["name"], _ref(concrete.get("source")), option["cells"]))
            slots.append(alternatives)
        total = int(np.prod([len(s) for s in slots], dtype=object))
        if total > MAX_STRUCTURES:
            raise _Unsupported(f"{total} branch layouts > {MAX_STRUCTURES}")
        layouts, seen = [], set()
        for combo in itertools.product(*slots):
            branches = [b for b in combo if b is not None]
            while True:  # as SearchSpace materialises: a branch whose source is gone goes too
                names = {b[0] for b in branches}
                kept = [b for b in branches if b[1] is None or b[1].branch in names]
                if len(kept) == len(branches):
                    break
                branches = kept
            key = tuple((name, source, id(cells)) for name, source, cells in branches)
            if key not in seen:
                seen.add(key)
                layouts.append(branches)
        return layouts

    def run(self) -> set[BlockSignature]:
        found: set[BlockSignature] = set()
        for layout in self.branch_layouts():
            found |= self.layout_signatures(layout)
        return found

    def layout_signatures(self, layout) -> set[BlockSignature]:
        names = [name for name, _, _ in layout]
        if not layout or len(set(names)) != len(names) or layout[0][1] is not None or any(
                source is None for _, source, _ in layout[1:]):
            return set()  # materialize rejects this layout in every network
        branches = {name: (source, cells) for name, source, cells in layout}

        def resolve(ref: Ref) -> tuple[str, int] | None:
            if ref.branch not in branches:
                return None
            count = len(branches[ref.branch][1])
            return (ref.branch, ref.cell % count) if -count <= ref.cell < count else None

        outputs: dict[tuple[str, int], set[Shape]] = {}
        signatures: dict[tuple[str, int], set[BlockSignature]] = {}
        visiting: set[tuple[str, int]] = set()

        def output_set(key: tuple[str, int]) -> set[Shape]:
            if key in outputs:
                return outputs[key]
            if key in visiting:
                raise _Unsupported(f"cell {key[1]} of branch {key[0]!r} can depend on itself")
            visiting.add(key)
            name, index = key
            source, cells = branches[name]
            if index > 0:
                inputs = output_set((name, index - 1))
            elif source is None:
                inputs = {(*self.input_size, 3)}
            else:
                resolved = resolve(source)
                inputs = output_set(resolved) if resolved is not None else set()
            shapes, blocks = set(), set()
            for cell in self.options(cells[index], f"branches[{name}].cells[{index}]"):
                context_ref = cell.context_ref()
                contexts: Iterable = [None]
                if context_ref is not None and context_ref.branch not in branches:
                    shapes.update(inputs)  # the space turns a cell reading a dropped branch into skip
                    continue
                if context_ref is not None:
                    resolved = resolve(context_ref)
                    if resolved is None:
                        continue
                    contexts = output_set(resolved)
                stride = cell.downsampling()
                for shape in inputs:
                    if not self.valid_at(cell, shape[2]):
                        continue
                    output = (-(-shape[0] // stride), -(-shape[1] // stride), cell.out_width(shape[2]))
                    shapes.add(output)
                    for context in contexts:
                        signature = cell_signature(cell, shape, output, context, self.quantization)
                        if signature is not None:
                            blocks.add(signature)
            visiting.discard(key)
            outputs[key], signatures[key] = shapes, blocks
            return shapes

        heads = expand(self.space.tree["head"])
        found: set[BlockSignature] = set()
        live: set[tuple[str, int]] = set()
        for head_data in heads:
            refs = [_ref(r) for r in head_data["inputs"] if r["branch"] in branches]
            resolved = [resolve(ref) for ref in refs]
            if not refs or None in resolved or head_data["op"] not in HEAD_OPS or (
                    head_data["op"] == "lraspp" and len(refs) != 2) or head_data["width"] <= 0:
                continue
            head = Head(head_data["op"], tuple(refs), head_data["width"])
            for shapes in itertools.product(*(sorted(output_set(key)) for key in resolved)):
                if head_builds(head.op, head.width, shapes, self.num_classes):
                    found.add(head_signature(head, shapes, self.num_classes, self.quantization))
                else:
                    self.unbuildable_heads.add((head.op, head.width, shapes))
            live.update(resolved)
        # every cell a head input can reach through its branch, sources and contexts
        pending = list(live)
        while pending:
            name, index = pending.pop()
            source, cells = branches[name]
            upstream = [(name, index - 1)] if index > 0 else (
                [resolve(source)] if source is not None else [])
            upstream += [resolve(cell.context_ref()) for cell in self.options(cells[index], name)
                         if cell.context_ref() is not None]
            for key in upstream:
                if key is not None and key not in live:
                    live.add(key)
                    pending.append(key)
        for key in live:
            output_set(key)
            found |= signatures[key]
        return found

    def valid_at(self, cell: Cell, in_width: int) -> bool:
        try:
            self.schema_io._check_cell(cell, in_width, self.space.source, "")
        except self.schema_io.GenotypeError:
            return False
        return True


def enumerate_space(space, input_size: tuple[int, int], num_classes: int,
                    quantization: str = "int8", *, seed: int = 0,
                    patience: int = SAMPLE_PATIENCE) -> SpaceSignatures:
    """Every block signature the space can produce at ``input_size`` (see the module doc).

    Args:
        space: a `mobileseg.arch.space.SearchSpace`.
        input_size: (height, width) of the image.
        num_classes: the head's output channels.
        quantization: the signatures' mode.
        seed, patience: for the sampling fallback only.

    Example:
        >>> from mobileseg.arch.space import SearchSpace
        >>> space = SearchSpace.from_text('''
        ... name: s
        ... branches:
        ...   - name: main
        ...     source: null
        ...     cells:
        ...       - {op: conv, width: {choice: [8, 16]}, stride: 2}
        ...       - choice: [{op: mbconv, width: 8}, {op: skip}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> result = enumerate_space(space, (32, 32), 5)
        >>> result.method, [s.key.split("|")[:3] for s in result.signatures]
        ('exact', [['conv', 'in=32x32x3', 'out=16x16x16'], ['conv', 'in=32x32x3', 'out=16x16x8'], ['light_head', 'in=16x16x8', 'out=16x16x5'], ['mbconv', 'in=16x16x16', 'out=16x16x8'], ['mbconv', 'in=16x16x8', 'out=16x16x8']])

        (The head of a 16-channel stem followed by a skip is left out: a ``light`` head with
        one input needs its own width, 8.)
    """
    try:
        walk = _Walk(space, input_size, num_classes, quantization)
        found = walk.run()
        detail = "shape walk over every branch layout"
        if walk.unbuildable_heads:
            detail += (f"; {len(walk.unbuildable_heads)} head/input combinations left out because "
                       "the builder refuses them (mobileseg.latency.block_model.head_builds)")
        method = "exact"
    except _Unsupported as reason:
        found, draws = _sample_until_stable(space, input_size, num_classes, quantization, seed,
                                            patience)
        method = "sampled"
        detail = (f"the exact walk does not support this space ({reason}); sampled {draws} "
                  f"networks (seed {seed}) until {patience} draws in a row added nothing")
    signatures = tuple(sorted(found, key=lambda s: s.key))
    return SpaceSignatures(signatures, method, f"{detail}; {len(signatures)} signatures")


def _sample_until_stable(space, input_size, num_classes, quantization, seed, patience):
    rng = np.random.default_rng(seed)
    found: set[BlockSignature] = set()
    quiet = draws = 0
    while quiet < patience and draws < SAMPLE_MAX_DRAWS:
        genotype = space.sample(rng)
        draws += 1
        if not buildable(genotype, input_size, num_classes):
            quiet += 1
            continue
        new = set(signatures_of(genotype, input_size, num_classes, quantization)) - found
        found |= new
        quiet = 0 if new else quiet + 1
    return found, draws


def space_signatures(space, input_size: tuple[int, int], num_classes: int,
                     quantization: str = "int8") -> list[BlockSignature]:
    """The signatures of `enumerate_space`, sorted by key."""
    return list(enumerate_space(space, input_size, num_classes, quantization).signatures)
