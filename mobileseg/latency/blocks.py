"""The blocks of a network as latency-table keys.

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

so two different blocks never share a key, and `cell_from_signature` gives the cell back
from its key alone (`mobileseg.latency.block_model` builds the one block from it). The image
normalisation in front of the stem and an optional final resize are not blocks; they are part
of the fitted overhead. Cells the head does not depend on are not in the exported model, so
they are not blocks either.

Every block a search space can produce: `mobileseg.latency.space_blocks`; the latency model
over these keys: `mobileseg.latency.genotype_latency`.

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
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence

from mobileseg.arch.genotype import Cell, Genotype, Head, Ref
from mobileseg.arch.ops.registry import CELL_TYPES, op_spec
from mobileseg.latency.signature import BlockSignature

Shape = tuple[int, int, int]

HEAD_SUFFIX = "_head"
# Cell fields that have their own place in a BlockSignature (the rest go to ``extra``).
_SIGNATURE_FIELDS = {"kernel": 1, "stride": 1, "expansion": 1, "width": 0}


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

