"""The blocks of a network as latency-table keys, and each block alone as a Keras model.

A network's predicted latency is the sum of its blocks' measured latencies (plus an
overhead, `mobileseg.latency.overhead`). Here a **block** is one cell of the genotype
(skip cells are none) or the head, and its `BlockSignature` says everything its latency
depends on:

- ``op``: the cell's op (``mbconv``, ``sea_attention``, ...) or ``<head op>_head``;
- ``input`` / ``output``: its real shapes (H, W, C) at the network's input size;
- ``kernel``, ``stride``, ``expansion``, ``width``: the cell's fields of those names
  (1, 1, 1, 0 when it has none);
- ``extra``: every other field of the cell (``heads``, ``key_dim``, ``sr_ratio``,
  ``tome_mode``, ``se``, ``act``, ``units``, ``context_size``, ``mode``, ``expanded``...,
  defaults included) and the shape of its second input as ``ctx``; for the head, the
  shapes of its inputs after the first as ``in1``, ``in2``, ...

so two different blocks never share a key, and `block_model` rebuilds the one block from
its key alone, through the builder's own `cell_layer` / `head_layer`: a block is timed
exactly as `build_model` makes it. The image normalisation in front of the stem and an
optional final resize are not blocks; they are part of the fitted overhead. Cells the head
does not depend on are not in the exported model, so they are not blocks either.

The genotype validator does not check the head against its inputs, so a space can sample
a network the builder refuses (a ``light`` head with one input of another width than the
head's): `head_builds` finds those, `sample_buildable` skips them, and the enumeration
leaves their heads out.

`space_signatures` lists every block a search space can produce at one input size: what
``python -m mobileseg.latency build`` measures. It enumerates **exactly**: for every
combination of the space's branch-level choices (which optional branches exist, where they
fork), it walks the cells in dependency order with the *set* of shapes that can reach each
cell, and takes every alternative of the cell at every such shape (context and head inputs:
every combination of their input sets). That is thousands of times cheaper than the space
(10^20+ genotypes for the default space at ~360 signatures). It never misses a signature; it
can list one that no valid network uses only when the two inputs of a two-input block (or
the head) vary through one shared choice, which the shipped spaces do not do (the tests
check that the enumeration equals the union of many samples). A space the walk does not
support (a cell that a choice can remove, a whole cell list as a choice, a cycle, or more
than `MAX_STRUCTURES` branch layouts) is covered instead by seeded sampling until
`SAMPLE_PATIENCE` draws in a row bring no new signature; the result says which was done.

Example:
    >>> from mobileseg.arch import schema_io
    >>> g = schema_io.loads('''
    ... name: tiny
    ... branches:
    ...   - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: skip}]}
    ... head: {op: light, inputs: [{branch: main}], width: 8}
    ... ''')
    >>> [s.key for s in signatures_of(g, (32, 32), num_classes=5)]
    ['conv|in=32x32x3|out=16x16x8|k=3|s=2|e=1|w=8|act=relu|q=int8', 'light_head|in=16x16x8|out=16x16x5|k=1|s=1|e=1|w=8|q=int8']
    >>> tuple(block_model(signatures_of(g, (32, 32), 5)[0]).output.shape)
    (1, 16, 16, 8)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import typing
from collections.abc import Iterable, Sequence

import numpy as np

from mobileseg.arch.genotype import HEAD_OPS, Cell, Genotype, Head, Ref
from mobileseg.arch.ops.registry import CELL_TYPES, op_spec
from mobileseg.arch.space_tree import count, expand, is_choice
from mobileseg.latency.signature import BlockSignature, parse_shape

Shape = tuple[int, int, int]

HEAD_SUFFIX = "_head"
# Cell fields that have their own place in a BlockSignature (the rest go to ``extra``).
_SIGNATURE_FIELDS = {"kernel": 1, "stride": 1, "expansion": 1, "width": 0}
MAX_STRUCTURES = 20_000   # branch layouts the exact walk accepts before sampling instead
SAMPLE_PATIENCE = 2_000   # sampling stops after this many draws in a row add nothing new
SAMPLE_MAX_DRAWS = 200_000


# ---- one block --------------------------------------------------------------------------

def cell_signature(cell: Cell, input_shape: Shape, output_shape: Shape,
                   context_shape: Shape | None = None, quantization: str = "int8"
                   ) -> BlockSignature | None:
    """The signature of one cell at its shapes; None for a cell whose op is no block (``skip``).

    Example:
        >>> from mobileseg.arch.ops.convolutions import MBConv
        >>> cell_signature(MBConv(width=24, kernel=5, stride=2), (90, 120, 16), (45, 60, 24)).key
        'mbconv|in=90x120x16|out=45x60x24|k=5|s=2|e=4|w=24|act=relu|expanded=0|se=false|q=int8'
    """
    if not op_spec(cell.OP).latency_block:
        return None
    fixed = dict(_SIGNATURE_FIELDS)
    extra = {}
    for field in dataclasses.fields(cell):
        value = getattr(cell, field.name)
        if field.name in fixed:
            fixed[field.name] = value
        elif isinstance(value, Ref):
            continue  # the context's shape is what matters, below
        else:
            extra[field.name] = value
    if (context_shape is None) != (cell.context_ref() is None):
        raise ValueError(f"{cell.OP}: a context shape is needed exactly when the cell has a context")
    if context_shape is not None:
        extra["ctx"] = tuple(context_shape)
    return BlockSignature(cell.OP, input_shape, output_shape, kernel=fixed["kernel"],
                          stride=fixed["stride"], expansion=fixed["expansion"],
                          width=fixed["width"], extra=extra, quantization=quantization)


def head_signature(head: Head, input_shapes: Sequence[Shape], num_classes: int,
                   quantization: str = "int8") -> BlockSignature:
    """The signature of the head reading features of ``input_shapes`` (finest first).

    Example:
        >>> from mobileseg.arch.genotype import Head, Ref
        >>> head_signature(Head("light", (Ref("a"), Ref("b")), 16), [(8, 8, 16), (4, 4, 32)], 5).key
        'light_head|in=8x8x16|out=8x8x5|k=1|s=1|e=1|w=16|in1=4x4x32|q=int8'
    """
    first = tuple(input_shapes[0])
    extra = {f"in{i}": tuple(shape) for i, shape in enumerate(input_shapes[1:], start=1)}
    return BlockSignature(head.op + HEAD_SUFFIX, first, (first[0], first[1], int(num_classes)),
                          width=head.width, extra=extra, quantization=quantization)


def cell_from_signature(signature: BlockSignature) -> Cell:
    """The cell a signature describes (its context, if any, is a placeholder reference).

    Raises:
        ValueError: a signature that is not a cell's (unknown op, missing or unknown field).

    Example:
        >>> from mobileseg.arch.ops.convolutions import MBConv
        >>> cell = MBConv(width=24, kernel=5, stride=2)
        >>> cell_from_signature(cell_signature(cell, (90, 120, 16), (45, 60, 24))) == cell
        True
    """
    if signature.op not in CELL_TYPES or not op_spec(signature.op).latency_block:
        raise ValueError(f"block {signature.key}: {signature.op!r} is not a cell op")
    cls = CELL_TYPES[signature.op]
    hints = typing.get_type_hints(cls)
    extra = signature.extra_dict()
    context = extra.pop("ctx", None)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in _SIGNATURE_FIELDS:
            value = getattr(signature, field.name)
        elif hints[field.name] is Ref:
            if context is None:
                raise ValueError(f"block {signature.key}: {signature.op} needs a ctx shape")
            values[field.name] = Ref("context")
            continue
        elif field.name in extra:
            value = extra.pop(field.name)
        else:
            raise ValueError(f"block {signature.key}: no value for the {signature.op} field "
                             f"{field.name!r}")
        values[field.name] = float(value) if hints[field.name] is float else value
    if extra:
        raise ValueError(f"block {signature.key}: unknown fields {sorted(extra)} for {signature.op}")
    return cls(**values)


def block_model(signature: BlockSignature):
    """The one block a signature describes, alone, at its real input shape(s), batch 1.

    Cells go through `mobileseg.arch.builder.cell_layer`, the head through
    `~mobileseg.arch.builder.head_layer`: the same layers `build_model` puts in a network.

    Raises:
        ValueError: an unknown op, or a block whose output is not the signature's output.

    Example:
        >>> from mobileseg.arch.genotype import Ref
        >>> from mobileseg.arch.ops.fuse import Fuse
        >>> sig = cell_signature(Fuse(context=Ref("low"), width=16, mode="sum"), (8, 8, 8),
        ...                      (8, 8, 16), context_shape=(4, 4, 32))
        >>> model = block_model(sig)
        >>> [tuple(t.shape) for t in model.inputs], tuple(model.output.shape)
        ([(1, 8, 8, 8), (1, 4, 4, 32)], (1, 8, 8, 16))
    """
    import keras

    from mobileseg.arch import builder

    name = signature.op
    if signature.op.endswith(HEAD_SUFFIX):
        op = signature.op[:-len(HEAD_SUFFIX)]
        if op not in HEAD_OPS:
            raise ValueError(f"block {signature.key}: unknown head {op!r}")
        extra = signature.extra_dict()
        shapes = [signature.input]
        for index in range(1, len(extra) + 1):
            if f"in{index}" not in extra:
                raise ValueError(f"block {signature.key}: head inputs must be in1, in2, ...")
            shapes.append(parse_shape(extra[f"in{index}"]))
        inputs = [keras.Input(shape, batch_size=1, name=f"in{i}") for i, shape in enumerate(shapes)]
        genotype = Genotype(name=name, branches=(), head=Head(op, (), signature.width))
        output = builder.head_layer(genotype, signature.output[2], name=name)(inputs)
    else:
        cell = cell_from_signature(signature)
        inputs = [keras.Input(signature.input, batch_size=1, name="x")]
        layer = builder.cell_layer(cell, signature.input[2], name)
        if cell.context_ref() is not None:
            inputs.append(keras.Input(parse_shape(signature.extra_dict()["ctx"]), batch_size=1,
                                      name="context"))
            output = layer(inputs)
        else:
            output = layer(inputs[0])
    if tuple(output.shape[1:]) != signature.output:
        raise ValueError(f"block {signature.key}: the layer gives output {tuple(output.shape[1:])}, "
                         f"not {signature.output}")
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], output, name=name)


@functools.lru_cache(maxsize=4096)
def head_builds(op: str, width: int, input_shapes: tuple[Shape, ...], num_classes: int) -> bool:
    """Whether the builder's head layer accepts these inputs (cheap: builds the layer, no model).

    `mobileseg.arch.schema_io.validate` does not check the head against its inputs, so a
    space can sample a network the builder refuses: a ``light`` head with ONE input must
    have ``width`` equal to that input's channels. Such heads are no blocks of any network.

    Example:
        >>> head_builds("light", 16, ((8, 8, 16),), 5), head_builds("light", 32, ((8, 8, 16),), 5)
        (True, False)
    """
    from mobileseg.arch import builder

    layer = builder.head_layer(Genotype("head", (), Head(op, (), width)), num_classes)
    shapes = [(1, *shape) for shape in input_shapes]
    try:
        layer.build(shapes if len(shapes) > 1 else shapes[0])
    except ValueError:
        return False
    return True


def buildable(genotype: Genotype, input_size: tuple[int, int], num_classes: int) -> bool:
    """Whether `mobileseg.arch.builder.build_model` can build this (valid) genotype.

    The one known gap between the genotype validator and the builder is the head (see
    `head_builds`); samplers skip such networks.
    """
    shapes = genotype.cell_shapes(tuple(input_size))
    inputs = tuple(shapes[genotype.resolve(ref)].output for ref in genotype.head.inputs)
    return head_builds(genotype.head.op, genotype.head.width, inputs, num_classes)


def sample_buildable(space, rng: np.random.Generator, input_size: tuple[int, int],
                     num_classes: int, max_draws: int = 1000) -> tuple[Genotype, int]:
    """A seeded sample the builder can build, and how many unbuildable draws it skipped.

    Raises:
        RuntimeError: ``max_draws`` draws in a row were unbuildable.
    """
    for skipped in range(max_draws):
        genotype = space.sample(rng)
        if buildable(genotype, input_size, num_classes):
            return genotype, skipped
    raise RuntimeError(f"{space.source}: {max_draws} samples in a row cannot be built at "
                       f"{input_size[0]}x{input_size[1]} (see mobileseg.latency.blocks.head_builds)")


# ---- the blocks of one network ---------------------------------------------------------

def live_cells(genotype: Genotype) -> set[tuple[str, int]]:
    """The cells the head's output depends on (what an exported model contains).

    Example:
        >>> from mobileseg.arch import schema_io
        >>> g = schema_io.loads('''
        ... name: t
        ... branches:
        ...   - {name: a, source: null, cells: [{op: conv, width: 8}, {op: conv, width: 8}]}
        ...   - {name: b, source: {branch: a, cell: 0}, cells: [{op: conv, width: 8}]}
        ... head: {op: light, inputs: [{branch: a, cell: 0}], width: 8}
        ... ''')
        >>> sorted(live_cells(g))
        [('a', 0)]
    """
    live: set[tuple[str, int]] = set()
    pending = [genotype.resolve(ref) for ref in genotype.head.inputs]
    while pending:
        key = pending.pop()
        if key in live:
            continue
        live.add(key)
        name, index = key
        branch = genotype.branch(name)
        if index > 0:
            pending.append((name, index - 1))
        elif branch.source is not None:
            pending.append(genotype.resolve(branch.source))
        context = branch.cells[index].context_ref()
        if context is not None:
            pending.append(genotype.resolve(context))
    return live


def named_signatures(genotype: Genotype, input_size: tuple[int, int], num_classes: int,
                     quantization: str = "int8") -> list[tuple[str, BlockSignature]]:
    """Each block of the network with its name: ``BRANCH[INDEX]`` for a cell, ``head`` for the head.

    The cells the head uses, in branch order (skips excluded), then the head: the blocks
    `signatures_of` lists, named for a per-block latency breakdown.

    Args:
        genotype: a valid genotype.
        input_size: (height, width) of the image.
        num_classes: the head's output channels.
        quantization: ``int8`` (as shipped), ``fp16`` or ``fp32``.

    Example:
        >>> from mobileseg.arch import schema_io
        >>> g = schema_io.loads('''
        ... name: t
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: skip}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> [(name, signature.op) for name, signature in named_signatures(g, (32, 32), 5)]
        [('main[0]', 'conv'), ('head', 'light_head')]
    """
    shapes = genotype.cell_shapes(tuple(input_size))
    live = live_cells(genotype)
    named = []
    for branch in genotype.branches:
        for index, cell in enumerate(branch.cells):
            if (branch.name, index) not in live:
                continue
            shape = shapes[(branch.name, index)]
            signature = cell_signature(cell, shape.input, shape.output, shape.context, quantization)
            if signature is not None:
                named.append((f"{branch.name}[{index}]", signature))
    head_inputs = [shapes[genotype.resolve(ref)].output for ref in genotype.head.inputs]
    named.append(("head", head_signature(genotype.head, head_inputs, num_classes, quantization)))
    return named


def signatures_of(genotype: Genotype, input_size: tuple[int, int], num_classes: int,
                  quantization: str = "int8") -> list[BlockSignature]:
    """One signature per block of the network (cells the head uses, skips excluded, then the head).

    A block that occurs twice is listed twice: the predictor sums occurrences.

    Args:
        genotype: a valid genotype.
        input_size: (height, width) of the image.
        num_classes: the head's output channels.
        quantization: ``int8`` (as shipped), ``fp16`` or ``fp32``.
    """
    return [signature for _, signature in named_signatures(genotype, input_size, num_classes, quantization)]


def genotype_latency_model(spec: str, input_size: tuple[int, int], num_classes: int,
                           quantization: str = "int8", **kwargs):
    """The `LatencyModel` the search uses: ``latency_ms(genotype)`` at this input size.

    `mobileseg.latency.predictor.latency_model_from_spec` wired to `signatures_of` and
    `block_model`: ``table:FILE`` (read-only), ``local[:FILE]`` (measure missing blocks on
    this CPU) or ``adb[:FILE]`` (on the phone ``serial=...``).

    Args:
        spec: the backend, e.g. ``table:runs/x/latency_table.json``.
        input_size, num_classes, quantization: of the networks (see `signatures_of`).
        **kwargs: ``default_table``, ``threads``, ``serial``, ``adb``, ``clock``, ``progress``.

    Example:
        >>> import tempfile, pathlib
        >>> from mobileseg.arch import schema_io
        >>> from mobileseg.latency.device import local_fingerprint
        >>> from mobileseg.latency.table import LatencyTable
        >>> g = schema_io.loads('''
        ... name: tiny
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> table = LatencyTable(local_fingerprint(), path=pathlib.Path(tempfile.mkdtemp()) / "t.json")
        >>> for signature, ms in zip(signatures_of(g, (32, 32), 5), [0.5, 0.25]):
        ...     table.add(signature, {"median_ms": ms, "p90_ms": ms, "std_ms": 0.0, "min_ms": ms,
        ...                           "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> table.save()
        >>> genotype_latency_model(f"table:{table.path}", (32, 32), 5).latency_ms(g)
        0.75
    """
    from mobileseg.latency.predictor import latency_model_from_spec

    return latency_model_from_spec(
        spec, functools.partial(signatures_of, input_size=tuple(input_size), num_classes=num_classes,
                                quantization=quantization),
        make_model=block_model, quantization=quantization, **kwargs)


# ---- every block of a space ------------------------------------------------------------

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
                       "the builder refuses them (mobileseg.latency.blocks.head_builds)")
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
