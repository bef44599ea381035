"""Every op of the genotype schema is registered with every facet, and each facet does its job."""

import dataclasses
import typing

import keras
import numpy as np
import pytest

from mobileseg.arch.genotype import Cell
from mobileseg.arch.ops import registry
from mobileseg.arch.ops.registry import CELL_TYPES
from mobileseg.arch.ops.spec import OpSpec
from mobileseg.arch.space import SearchSpace
from mobileseg.arch.space_tree import expand, is_choice
from mobileseg.supernet.elastic import CellArgs
from mobileseg.supernet.plan import cell_from_dict
from tests.supernet.spaces import ALL_OPS


def example_cells() -> dict:
    """One cell of every op, the first alternative of it in the supernet tests' all-ops space."""
    tree = SearchSpace.from_text(ALL_OPS.replace("HEAD", "light"), "allops.yaml").tree
    found = {}
    for node in tree["branches"]:
        for branch in node["choice"] if is_choice(node) else [node]:
            for cell in branch["cells"] if branch is not None else []:
                for value in expand(cell):
                    found.setdefault(value["op"], cell_from_dict(value))
    return found


def test_every_cell_class_of_the_schema_is_registered_and_nothing_else():
    classes = {cls.OP: cls for cls in Cell.__subclasses__()}
    assert set(classes) == set(registry.OPS) == set(CELL_TYPES)
    for op, spec in registry.OPS.items():
        assert spec.cell is classes[op] is CELL_TYPES[op] and spec.op == op


def test_every_registered_op_spells_out_every_facet():
    hints = typing.get_type_hints(OpSpec)
    for op, spec in registry.OPS.items():
        for field in dataclasses.fields(OpSpec):
            value = getattr(spec, field.name)
            assert value is not None, f"{op}: facet {field.name} is missing"
            kind = typing.get_origin(hints[field.name]) or hints[field.name]  # Callable, bool, tuple, type
            assert isinstance(value, kind), f"{op}: facet {field.name} is not a {kind.__name__}"


def test_an_unknown_op_is_named():
    with pytest.raises(ValueError, match="no op 'mbconvv' is registered"):
        registry.op_spec("mbconvv")


def test_the_all_ops_space_has_an_example_of_every_op():
    assert set(example_cells()) == set(registry.OPS)


@pytest.mark.parametrize("op", sorted(CELL_TYPES))
def test_the_layer_of_every_op_gives_the_shape_the_genotype_says(op):
    cell = example_cells()[op]
    x = keras.Input((8, 8, 8), batch_size=1)
    layer = registry.op_spec(op).layer(cell, 8, f"b_0_{op}")
    context = keras.Input((4, 4, 16), batch_size=1) if cell.context_ref() is not None else None
    output = layer([x, context] if context is not None else x)
    stride = cell.downsampling()
    assert tuple(output.shape) == (1, 8 // stride, 8 // stride, cell.out_width(8))
    model = keras.Model([x, context] if context is not None else x, output)
    inputs = [np.ones((1, 8, 8, 8), np.float32)] + ([np.ones((1, 4, 4, 16), np.float32)] if context is not None else [])
    assert np.isfinite(model(inputs if context is not None else inputs[0])).all()


@pytest.mark.parametrize("op", sorted(CELL_TYPES))
def test_the_elastic_forward_of_every_op_at_its_own_widths_is_its_layer(op):
    cell, spec = example_cells()[op], registry.op_spec(op)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 8, 8, 8)).astype("float32")
    context = rng.normal(size=(1, 4, 4, 16)).astype("float32") if cell.context_ref() is not None else None
    layer = spec.layer(cell, 8, f"b_0_{op}")
    expected = layer([x, context] if context is not None else x, training=False)
    args = CellArgs(in_width=8, out_width=cell.out_width(8), kernel=getattr(cell, "kernel", 0),
                    hidden=spec.hidden_width(cell, 8), se=spec.se_width(cell, 8),
                    residual=int(spec.residual(cell, 8)), context_width=16)
    for kernel in (None, args.kernel) if "kernel" in spec.elastic_fields else (None,):
        out = spec.forward(layer, x, context, args, False, None, kernel)
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-4, err_msg=op)
