"""Strict YAML/JSON round trip of genotypes (docs/architecture.md, section 3; after tunas' ``schema_io``).

``load(dump(g)) == g`` for every genotype. Reading rejects an unknown key, a
missing key, a value of the wrong type or outside its allowed set, and a network
whose shapes cannot connect, with ONE error that names the file and the key path,
e.g. ``arch.yaml: branches[1].cells[3].op: unknown op 'mbconvv'; expected one of ...``.

Example:
    >>> text = '''
    ... name: tiny
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: 8, stride: 2}
    ...       - {op: mbconv, width: 8, kernal: 3}
    ... head: {op: light, inputs: [{branch: main}], width: 8}
    ... '''
    >>> loads(text, source="tiny.yaml")
    Traceback (most recent call last):
    ...
    mobileseg.arch.genotype.GenotypeError: tiny.yaml: branches[0].cells[1]: unknown key 'kernal'; allowed: width, kernel, stride, expansion, se, act, expanded
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing

import yaml

from mobileseg.arch.genotype import SCHEMA_VERSION, Branch, Cell, Genotype, GenotypeError, Head, Ref
from mobileseg.arch.ops.registry import ATTENTION_OPS, CELL_TYPES, op_spec
from mobileseg.atomic_write import write_atomic
from mobileseg.bounded_yaml import check_bounds, load_yaml, read_yaml
from mobileseg.shipped_files import shipped_path
from mobileseg.short_repr import short_repr

MAX_BRANCHES = 64
MAX_CELLS = 1000
"""At most this many branches and cells in all: tens of times the largest network of the repository."""

MAX_WIDTH = 4096
BOUNDS: dict[str, tuple[int | float, int | float]] = {
    "width": (1, MAX_WIDTH),  # channels of a cell or of the head (the references: at most 960)
    "expanded": (0, 4 * MAX_WIDTH),  # an MBConv's explicit hidden width (0: width x expansion)
    "units": (1, MAX_WIDTH),  # GFA memory units (references: 512)
    "key_dim": (1, MAX_WIDTH),  # attention key width (references: 32)
    "heads": (1, 64),  # attention heads (references: 8)
    "expansion": (0.0, 16.0),  # MBConv hidden over input width (references: 6)
    "mlp_ratio": (0.0, 16.0),  # attention FFN hidden over width (references: 6)
    "attn_ratio": (1, 16),  # SeaFormer value width over key width (references: 2)
    "context_size": (1, 256),  # cross-attention pooled context side (references: 12)
    "cell": (-MAX_CELLS, MAX_CELLS),  # a reference's cell index (its range is checked by `validate`)
}
"""The allowed range of every number of a cell, the head and a reference, by field name, checked
when it is read (before anything is built): far above every network of the repository, far below
sizes that would make the builder allocate absurd tensors. A field with a fixed set of values
(``kernel``, ``stride``, ``sr_ratio``) is bounded by that set instead."""


def _fail(source: str, path: str, message: str):
    where = f"{source}: {path}" if path else source
    raise GenotypeError(f"{where}: {message}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _convert(value, annotation, source: str, path: str):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], source, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(source, path, f"expected a list, got {type(value).__name__} {short_repr(value)}")
        item = typing.get_args(annotation)[0]
        return tuple(_convert(v, item, source, _join(path, i)) for i, v in enumerate(value))
    if annotation is Cell:
        return _cell_from_dict(value, source, path)
    if dataclasses.is_dataclass(annotation):
        return _dataclass_from_dict(annotation, value, source, path)
    if annotation is bool:
        if not isinstance(value, bool):
            _fail(source, path, f"expected true or false, got {short_repr(value)}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(source, path, f"expected an integer, got {short_repr(value)}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(source, path, f"expected a number, got {short_repr(value)}")
        if not math.isfinite(value):
            _fail(source, path, f"expected a finite number, got {short_repr(value)}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            _fail(source, path, f"expected a string, got {short_repr(value)}")
        return value
    raise TypeError(f"no conversion for {annotation!r}")  # a schema bug, not a user error


def _dataclass_from_dict(cls, data, source: str, path: str, skip: tuple[str, ...] = ()):
    if not isinstance(data, dict):
        _fail(source, path, f"expected a mapping for {cls.__name__}, got {short_repr(data)}")
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    names = [f.name for f in fields]
    unknown = [k for k in data if k not in names and k not in skip]
    if unknown:
        _fail(source, path, f"unknown key {short_repr(unknown[0])}; allowed: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields:
        key_path = _join(path, f.name)
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(source, key_path, "missing key")
            continue
        value = _convert(data[f.name], hints[f.name], source, key_path)
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            allowed = ", ".join(str(c) for c in f.metadata["choices"])
            _fail(source, key_path, f"{short_repr(value)} is not allowed; expected one of {allowed}")
        if f.metadata.get("positive") and value <= 0:
            _fail(source, key_path, f"must be positive, got {short_repr(value)}")
        _check_bound(f.name, value, source, key_path)
        values[f.name] = value
    return cls(**values)


def _check_bound(name: str, value, source: str, path: str) -> None:
    """Refuse a number outside its `BOUNDS` range, naming the file, the key path and the bound."""
    if name not in BOUNDS or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, high = BOUNDS[name]
    if value > high:
        _fail(source, path, f"{short_repr(value)} is above the limit: {name} is at most {high}")
    if value < low:
        _fail(source, path, f"{short_repr(value)} is below the limit: {name} is at least {low}")


def _cell_from_dict(data, source: str, path: str) -> Cell:
    if not isinstance(data, dict) or "op" not in data:
        _fail(source, path, f"a cell needs an 'op' key, got {short_repr(data)}")
    op = data["op"]
    if op not in CELL_TYPES:
        _fail(source, _join(path, "op"), f"unknown op {short_repr(op)}; expected one of {', '.join(CELL_TYPES)}")
    return _dataclass_from_dict(CELL_TYPES[op], {k: v for k, v in data.items() if k != "op"}, source, path)


def from_dict(data, source: str = "<genotype>") -> Genotype:
    """Build and validate a genotype from plain data (as read from YAML/JSON).

    Raises:
        GenotypeError: naming ``source`` and the key path of the first problem.
    """
    check_bounds(data, source, error=GenotypeError)
    if not isinstance(data, dict):
        _fail(source, "", f"expected a mapping at the top level, got {type(data).__name__}")
    check_counts(data, source)
    if "external" in data:  # a network another library builds (`mobileseg.arch.external`)
        from mobileseg.arch import external

        return external.from_dict(data, source)
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        _fail(source, "schema_version",
              f"unsupported version {short_repr(version)}; this mobileseg reads {SCHEMA_VERSION}")
    genotype = _dataclass_from_dict(Genotype, data, source, "")
    validate(genotype, source)
    return genotype


def check_counts(data: dict, source: str = "<genotype>") -> None:
    """Refuse more than `MAX_BRANCHES` branches or `MAX_CELLS` cells before any is built.

    Raises:
        GenotypeError: naming the count and the limit.

    Example:
        >>> check_counts({"branches": [{"cells": [{"op": "skip"}] * 5000}]}, "huge.yaml")
        Traceback (most recent call last):
        ...
        mobileseg.arch.genotype.GenotypeError: huge.yaml: branches: 5000 cells in all; a network has at most 1000
    """
    branches = data.get("branches")
    if not isinstance(branches, list):
        return  # a type error, reported with its key path by the conversion
    if len(branches) > MAX_BRANCHES:
        _fail(source, "branches", f"{len(branches)} branches; a network has at most {MAX_BRANCHES}")
    cells = sum(len(b["cells"]) for b in branches if isinstance(b, dict) and isinstance(b.get("cells"), list))
    if cells > MAX_CELLS:
        _fail(source, "branches", f"{cells} cells in all; a network has at most {MAX_CELLS}")


def validate(genotype: Genotype, source: str = "<genotype>") -> None:
    """Check that the branches, references and widths connect into one network.

    Raises:
        GenotypeError: duplicate or unknown branch, a reference out of range, a cycle,
            an attention cell whose width its heads do not divide, a bad head or token merging.
    """
    names = [b.name for b in genotype.branches]
    if not names:
        _fail(source, "branches", "a network needs at least one branch")
    for i, branch in enumerate(genotype.branches):
        if branch.name in names[:i]:
            _fail(source, f"branches[{i}].name", f"duplicate branch name {short_repr(branch.name)}")
        if not branch.cells:
            _fail(source, f"branches[{i}].cells", "a branch needs at least one cell")
        if (i == 0) != (branch.source is None):
            _fail(source, f"branches[{i}].source",
                  "the first branch starts from the image (source: null); every other branch needs a source")

    index_of = {name: i for i, name in enumerate(names)}

    def check_ref(ref: Ref, path: str) -> None:
        if ref.branch not in index_of:
            _fail(source, _join(path, "branch"),
                  f"unknown branch {short_repr(ref.branch)}; branches: {', '.join(names)}")
        count = len(genotype.branches[index_of[ref.branch]].cells)
        if not -count <= ref.cell < count:
            _fail(source, _join(path, "cell"),
                  f"branch {short_repr(ref.branch)} has {count} cells; cell {ref.cell} does not exist")

    widths: dict[tuple[str, int], int] = {}
    visiting: set[tuple[str, int]] = set()

    def width_of(name: str, index: int, path: str) -> int:
        """Output channels of a cell, computed through its inputs (detects cycles)."""
        key = (name, index)
        if key in widths:
            return widths[key]
        if key in visiting:
            _fail(source, path, f"cycle: cell {index} of branch {short_repr(name)} depends on itself")
        visiting.add(key)
        b = index_of[name]
        branch = genotype.branches[b]
        cell = branch.cells[index]
        cell_path = f"branches[{b}].cells[{index}]"
        if index > 0:
            in_width = width_of(name, index - 1, cell_path)
        elif branch.source is None:
            in_width = 3
        else:
            check_ref(branch.source, f"branches[{b}].source")
            in_width = width_of(*genotype.resolve(branch.source), f"branches[{b}].source")
        context = cell.context_ref()
        if context is not None:
            check_ref(context, _join(cell_path, "context"))
            width_of(*genotype.resolve(context), _join(cell_path, "context"))
        _check_cell(cell, in_width, source, cell_path)
        visiting.discard(key)
        widths[key] = cell.out_width(in_width)
        return widths[key]

    for b, branch in enumerate(genotype.branches):
        for index in range(len(branch.cells)):
            width_of(branch.name, index, f"branches[{b}].cells[{index}]")
    head = genotype.head
    if not head.inputs:
        _fail(source, "head.inputs", "the head needs at least one input")
    if head.op == "lraspp" and len(head.inputs) != 2:
        _fail(source, "head.inputs", f"lraspp takes [low, high] inputs, got {len(head.inputs)}")
    for i, ref in enumerate(head.inputs):
        check_ref(ref, f"head.inputs[{i}]")
    if head.op == "light" and len(head.inputs) == 1:
        width = widths[genotype.resolve(head.inputs[0])]
        if width != head.width:
            _fail(source, "head.width", f"a light head with one input keeps its width: the input has {width} "
                  f"channels, the head says {head.width}")
    for i, ref in enumerate(head.aux):
        check_ref(ref, f"head.aux[{i}]")


def _check_cell(cell: Cell, in_width: int, source: str, path: str) -> None:
    spec = op_spec(cell.OP)
    if spec.split_heads and in_width % cell.heads:
        _fail(source, _join(path, "heads"), f"{cell.heads} heads do not divide the input width {in_width}")
    for field, problem in spec.check(cell, in_width):  # _fail raises: the first problem is reported
        _fail(source, _join(path, field), problem)
    if cell.OP in ATTENTION_OPS and in_width < 2:
        _fail(source, path, f"{cell.OP} needs a feature map, not the image")


def to_dict(genotype: Genotype) -> dict:
    """Plain data for a genotype; every field written, cells with their ``op`` first."""
    from mobileseg.arch.external import External

    if isinstance(genotype, External):
        return {"schema_version": genotype.schema_version, "name": genotype.name, "external": genotype.external}

    def convert(value):
        if isinstance(value, Cell):
            return {"op": value.OP, **{f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}}
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        return value

    data = convert(genotype)
    return {"schema_version": data.pop("schema_version"), **data}


class _FlowCells(yaml.SafeDumper):
    """Writes each cell and reference on one line, the rest in block style."""


def _represent_dict(dumper, data):
    flow = "op" in data or set(data) == {"branch", "cell"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_FlowCells.add_representer(dict, _represent_dict)


def dumps(genotype: Genotype, fmt: str = "yaml") -> str:
    """A genotype as YAML (default) or JSON text."""
    data = to_dict(genotype)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.dump(data, Dumper=_FlowCells, sort_keys=False, width=120)


def loads(text: str, source: str = "<string>") -> Genotype:
    """Parse YAML (a superset of JSON) text into a validated genotype, within `mobileseg.bounded_yaml`'s limits."""
    return from_dict(load_yaml(text, source, error=GenotypeError), source)


def load(path: str | os.PathLike) -> Genotype:
    """Read a ``.yaml``/``.yml``/``.json`` genotype file: a path, or a shipped genotype's path or name
    (``seaformer_tiny``; `mobileseg.shipped_files.shipped_path`).

    Raises:
        GenotypeError: the file is missing, unreadable, not UTF-8, too large (`mobileseg.bounded_yaml`)
            or not a valid genotype (named).
    """
    path = shipped_path(path, "genotype")
    return from_dict(read_yaml(path, error=GenotypeError), str(path))


def dump(genotype: Genotype, path: str | os.PathLike) -> None:
    """Write a genotype atomically, as JSON for ``.json`` paths and YAML otherwise."""
    write_atomic(path, dumps(genotype, "json" if str(path).endswith(".json") else "yaml"))
