"""Copy a supernet's shared weights into the standalone network of one genotype.

The standalone network is `mobileseg.arch.builder.build_model` of the genotype: the
same blocks at the genotype's own widths. Each of its weights is a slice of the
shared weight of the block the supernet runs for that cell (`SupernetPlan.group_index`):

- the first channels along every channel axis (inputs, outputs, hidden widths, BN
  statistics), which is what the supernet's masks compute (`mobileseg.supernet.elastic`);
- the centre of a larger kernel;
- a tensor that stacks two halves of the widest width (SegFormer's ``kv`` dense layer,
  RTFormer's ``context_kv``) gives the first channels of each half;
- the head: each of the genotype's head inputs takes the projection (light head) or
  linear layer (MLP head) of its position among the space's head inputs; the MLP head's
  fuse conv takes, for each present input, the first rows of that input's block.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from mobileseg.arch.genotype import Genotype

HALVES = ("attn/kv/kernel", "attn/kv/bias", "cross_attn/context_kv/kernel")
"""Weights (path suffixes inside a cell) whose last axis stacks keys and values, each the block's width."""


def relative_path(variable, layer: keras.layers.Layer) -> str:
    """The path of ``variable`` inside ``layer`` (``expand/conv/kernel``)."""
    return variable.path.split(f"{layer.name}/", 1)[1]


def slice_like(value: np.ndarray, shape: tuple, path: str) -> np.ndarray:
    """The first entries of ``value`` along every axis (the centre of a conv kernel's spatial axes).

    Example:
        >>> w = np.arange(5 * 5 * 2 * 3).reshape(5, 5, 2, 3)
        >>> part = slice_like(w, (3, 3, 1, 2), "conv/kernel")
        >>> part.shape, int(part[0, 0, 0, 0])
        ((3, 3, 1, 2), 36)
    """
    spatial = path.endswith("kernel") and value.ndim == 4
    index = []
    for axis, (have, want) in enumerate(zip(value.shape, shape, strict=True)):
        if want > have:
            raise ValueError(f"{path}: the shared weight {value.shape} is smaller than the subnet's {shape}")
        start = (have - want) // 2 if spatial and axis < 2 else 0
        index.append(slice(start, start + want))
    return value[tuple(index)]


def halves(value: np.ndarray, width: int) -> np.ndarray:
    """The first ``width`` channels of each half of the last axis."""
    half = value.shape[-1] // 2
    return np.concatenate([value[..., :width], value[..., half:half + width]], axis=-1)


def copy_layer(wide: keras.layers.Layer, narrow: keras.layers.Layer, rename=None, transform=None) -> None:
    """Assign every weight of ``narrow`` from the matching slice of ``wide``'s.

    Args:
        wide: the shared (widest) layer.
        narrow: the layer of the standalone network (same class, narrower).
        rename: maps a path inside ``narrow`` to the path inside ``wide`` (default: same).
        transform: ``(path, wide_value, narrow_shape) -> value`` before the generic slice, or None.
    """
    sources = {relative_path(v, wide): v for v in wide.weights}
    for variable in narrow.weights:
        path = relative_path(variable, narrow)
        source = (rename or (lambda p: p))(path)
        if source not in sources:
            raise KeyError(f"{narrow.name}: no shared weight {source!r} in {wide.name}; has {sorted(sources)}")
        value = keras.ops.convert_to_numpy(sources[source])
        shape = tuple(variable.shape)
        if transform is not None:
            value = transform(path, value, shape)
        variable.assign(slice_like(value, shape, path))


def _cell_transform(path, value, shape):
    if path.endswith(HALVES):
        return halves(value, shape[-1] // 2)
    return value


def copy_into(supernet, genotype: Genotype, model: keras.Model) -> None:
    """Copy ``supernet``'s weights for ``genotype`` into ``model`` (its `build_model` network)."""
    plan = supernet.plan
    shapes = genotype.cell_shapes(plan.input_size)
    for branch in genotype.branches:
        for index, cell in enumerate(branch.cells):
            slot = plan.slot(branch.name, index)
            group = plan.group_index(slot, cell, shapes[(branch.name, index)].input[2])
            wide = supernet._slot_layers[slot.name][group]
            copy_layer(wide, model.get_layer(f"{branch.name}_{index}_{cell.OP}"), transform=_cell_transform)
    _copy_head(supernet, genotype, model.get_layer("head"))


def _copy_head(supernet, genotype: Genotype, narrow) -> None:
    plan = supernet.plan
    wide = supernet.head_layer
    present = plan.present_head_inputs(genotype)  # space input index of each genotype input
    total = len(plan.head.inputs)

    def rename(path):
        def light(match):
            return f"project_{present[int(match.group(1))]}"

        def mlp(match):
            return f"linear_c{present[int(match.group(1)) - 1] + 1}"

        path = re.sub(r"^project_(\d+)", light, path)
        return re.sub(r"^linear_c(\d+)", mlp, path)

    def transform(path, value, shape):
        if plan.head.op == "mlp" and path == "linear_fuse/conv/kernel":
            width_wide, width = value.shape[-2] // total, shape[-1]
            # Concatenation is coarsest first: block q holds input (count - 1 - q).
            blocks = [value[:, :, (total - 1 - i) * width_wide:(total - 1 - i) * width_wide + width, :]
                      for i in reversed(present)]
            return np.concatenate(blocks, axis=2)
        return value

    copy_layer(wide, narrow, rename=rename, transform=transform)
