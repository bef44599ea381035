"""One builder: any genotype -> a standalone ``keras.Model`` (docs/architecture.md, section 3).

References, searched networks and subnets of the supernet all go through
``build_model``; a new architecture needs a YAML file, not new model code.

The model takes float RGB images in [0, 255] (batch, H, W, 3) and normalises
them in the graph with ``mobileseg.data.normalization``'s constants, so an
exported model needs no host-side preprocessing. Its output is logits at the resolution of the head's first
input (1/8 for most networks), or at the input size with ``resize_output``.
Layers are named ``<branch>_<index>_<op>`` so per-block tables can name them.
"""

from __future__ import annotations

import keras
import numpy as np

from mobileseg.arch.external import External
from mobileseg.arch.genotype import Cell, Genotype, Ref
from mobileseg.arch.ops.registry import op_spec
from mobileseg.blocks import heads
from mobileseg.data.normalization import MEAN_RGB, STD_RGB


def cell_layer(cell: Cell, in_channels: int, name: str) -> keras.layers.Layer:
    """The Keras layer that implements one cell, given its input channels (its op's registered factory).

    Example:
        >>> from mobileseg.arch.ops.convolutions import MBConv
        >>> type(cell_layer(MBConv(width=16, kernel=5, stride=2), 8, "b_0_mbconv")).__name__
        'MBConv'
    """
    return op_spec(cell.OP).layer(cell, in_channels, name)


def head_layer(genotype: Genotype, num_classes: int, name: str = "head") -> keras.layers.Layer:
    """The segmentation head named by ``genotype.head.op``."""
    head = genotype.head
    if head.op == "light":
        return heads.LightHead(num_classes, head.width, name=name)
    if head.op == "mlp":
        return heads.MLPDecoder(num_classes, head.width, name=name)
    return heads.LRASPPHead(num_classes, head.width, name=name)


def build_model(genotype: Genotype, num_classes: int, input_size: tuple[int, int], *,
                resize_output: bool = False, auxiliary: bool = False, batch_size: int | None = None,
                name: str | None = None) -> keras.Model:
    """Build the network a genotype describes.

    Args:
        genotype: a validated genotype.
        num_classes: output channels of the logits.
        input_size: (height, width) of the input images.
        resize_output: add a bilinear resize of the logits to the input size.
        auxiliary: also output one logits map per ``head.aux`` reference (for training).
        batch_size: a static batch size, or None.
        name: model name (default: the genotype's).

    Returns:
        A functional model: image (B, H, W, 3) in [0, 255] -> logits (B, h, w, num_classes)
        [, auxiliary logits ...].

    Example:
        >>> from mobileseg.arch import schema_io
        >>> g = schema_io.loads('''
        ... name: tiny
        ... branches:
        ...   - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 8, stride: 2}]}
        ...   - {name: low, source: {branch: main}, cells: [{op: mbconv, width: 16, stride: 2}]}
        ... head: {op: light, inputs: [{branch: main}, {branch: low}], width: 8}
        ... ''')
        >>> build_model(g, num_classes=5, input_size=(32, 32)).output.shape
        (None, 8, 8, 5)
    """
    if isinstance(genotype, External):  # logits already at the input size; no auxiliary heads
        return genotype.build(num_classes, input_size, batch_size=batch_size, name=name)
    height, width = input_size
    image = keras.Input((height, width, 3), batch_size=batch_size, name="image")
    normalized = keras.layers.Normalization(mean=MEAN_RGB, variance=np.square(STD_RGB), name="normalize")(image)
    outputs: dict[tuple[str, int], object] = {}

    def feature(ref: Ref):
        branch_name, index = genotype.resolve(ref)
        key = (branch_name, index)
        if key not in outputs:
            branch = genotype.branch(branch_name)
            if index > 0:
                x = feature(Ref(branch_name, index - 1))
            elif branch.source is None:
                x = normalized
            else:
                x = feature(branch.source)
            cell = branch.cells[index]
            layer = cell_layer(cell, int(x.shape[-1]), f"{branch_name}_{index}_{cell.OP}")
            context = cell.context_ref()
            outputs[key] = layer([x, feature(context)] if context is not None else x)
        return outputs[key]

    for branch in genotype.branches:
        for index in range(len(branch.cells)):
            feature(Ref(branch.name, index))
    head_inputs = [feature(ref) for ref in genotype.head.inputs]
    logits = head_layer(genotype, num_classes)(head_inputs)
    if resize_output:
        logits = keras.layers.Resizing(height, width, interpolation="bilinear", name="resize_logits")(logits)
    model_outputs = [logits]
    if auxiliary:
        for i, ref in enumerate(genotype.head.aux):
            aux = feature(ref)
            aux_head = heads.LightHead(num_classes, int(aux.shape[-1]), name=f"aux_head_{i}")
            model_outputs.append(aux_head([aux]))
    return keras.Model(image, model_outputs if len(model_outputs) > 1 else logits, name=name or genotype.name)
