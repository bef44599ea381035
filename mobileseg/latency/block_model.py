"""Each latency-table block alone as a Keras model, and which heads the builder can build.

`block_model` rebuilds the one block a `BlockSignature` (`mobileseg.latency.blocks`) describes
from its key alone, through the builder's own `cell_layer` / `head_layer`: a block is timed
exactly as `build_model` makes it.

The genotype validator does not check the head against its inputs, so a space can sample
a network the builder refuses (a ``light`` head with one input of another width than the
head's): `head_builds` finds those, `sample_buildable` skips them, and the enumeration
(`mobileseg.latency.space_blocks`) leaves their heads out.

Example:
    >>> from mobileseg.arch.ops.convolutions import Conv
    >>> from mobileseg.latency.blocks import cell_signature
    >>> signature = cell_signature(Conv(width=8, stride=2), (32, 32, 3), (16, 16, 8))
    >>> tuple(block_model(signature).output.shape)
    (1, 16, 16, 8)
"""

from __future__ import annotations

import functools

import numpy as np

from mobileseg.arch.genotype import HEAD_OPS, Genotype, Head
from mobileseg.latency.blocks import HEAD_SUFFIX, Shape, cell_from_signature
from mobileseg.latency.signature import BlockSignature, parse_shape


def block_model(signature: BlockSignature):
    """The one block a signature describes, alone, at its real input shape(s), batch 1.

    Cells go through `mobileseg.arch.builder.cell_layer`, the head through
    `~mobileseg.arch.builder.head_layer`: the same layers `build_model` puts in a network.

    Raises:
        ValueError: an unknown op, or a block whose output is not the signature's output.

    Example:
        >>> from mobileseg.arch.genotype import Ref
        >>> from mobileseg.arch.ops.fuse import Fuse
        >>> from mobileseg.latency.blocks import cell_signature
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
                       f"{input_size[0]}x{input_size[1]} (see mobileseg.latency.block_model.head_builds)")

