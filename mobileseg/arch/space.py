"""Search spaces: the genotype schema with choice lists (docs/architecture.md, section 3).

A space file is a genotype file in which any value may be written
``{choice: [a, b, ...]}``: a width, a kernel, a fork point, a whole cell (which is
how a cell chooses its op, ``{op: skip}`` included) or a whole branch, where a
``null`` alternative drops the branch. Dropping a branch drops the branches that
fork from it and the head inputs that read it, and turns the cells that read it
(fusion, cross-resolution attention) into ``skip``. A reference network is a space
with every choice fixed.

Every sample is described by its **decisions**: ``{choice path: alternative
index}`` for the choices it went through, e.g. ``{"branches[0].cells[4]": 2,
"branches[0].cells[4]/2.width": 1}`` (``/2`` reads "inside alternative 2").
Sampling, mutation and crossover work on decisions with a seeded
``np.random.Generator`` (docs/architecture.md, section 5) and always finish: a combination
that does not connect is redrawn a bounded number of times, then raises.

Example:
    >>> import numpy as np
    >>> space = SearchSpace.from_text('''
    ... name: demo
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: 8, stride: 2}
    ...       - choice: [{op: mbconv, width: {choice: [8, 16]}}, {op: skip}]
    ... head: {op: light, inputs: [{branch: main}], width: 8}
    ... ''')
    >>> space.size()
    3
    >>> rng = np.random.default_rng(0)
    >>> sorted({space.sample(rng).branches[0].cells[1].OP for _ in range(20)})
    ['mbconv', 'skip']
"""

from __future__ import annotations

import dataclasses
import os
import typing

import numpy as np

from mobileseg.arch import schema_io
from mobileseg.arch.genotype import Cell, Genotype
from mobileseg.arch.ops.registry import CELL_TYPES
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space_tree import count, is_choice, join
from mobileseg.bounded_yaml import load_yaml, read_yaml
from mobileseg.shipped_files import shipped_path
from mobileseg.short_repr import short_repr

Decisions = dict[str, int]
MAX_RETRIES = 200
SKIP = {"op": "skip"}


class SearchSpace:
    """A genotype template whose values may be ``{choice: [...]}``.

    Args:
        tree: the parsed space (plain data).
        source: a name for messages (the file path).
    """

    def __init__(self, tree: dict, source: str = "<space>"):
        self.source = source
        self.tree = _normalize(tree, Genotype, source, "")

    @classmethod
    def from_text(cls, text: str, source: str = "<string>") -> "SearchSpace":
        """Parse a space from YAML text, within `mobileseg.bounded_yaml`'s limits."""
        return cls(load_yaml(text, source, error=GenotypeError), source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchSpace":
        """Read a space file (YAML or JSON; UTF-8, within `mobileseg.bounded_yaml`'s limits): a path, or a
        shipped space's path or name (``default``; `mobileseg.shipped_files.shipped_path`).

        Raises:
            GenotypeError: naming the file, and the key path of a bad value.
        """
        path = shipped_path(path, "space")
        return cls(read_yaml(path, error=GenotypeError), str(path))

    # -- decisions ---------------------------------------------------------------------------
    def sample_decisions(self, rng: np.random.Generator) -> Decisions:
        """Uniform choices at every choice point a sample passes through."""
        decisions: Decisions = {}
        self._walk(self.tree, "", decisions, lambda path, n: int(rng.integers(n)))
        return decisions

    def materialize(self, decisions: Decisions) -> Genotype:
        """The genotype that ``decisions`` select.

        Raises:
            GenotypeError: a decision is missing or out of range, or the result does not connect.
        """
        def pick(path, n):
            if path not in decisions:
                raise GenotypeError(f"{self.source}: no decision for choice {path}")
            if not 0 <= decisions[path] < n:
                raise GenotypeError(f"{self.source}: {path}: decision {decisions[path]} not in 0..{n - 1}")
            return decisions[path]

        data = self._walk(self.tree, "", {}, pick)
        return schema_io.from_dict(_prune_dropped_branches(data), self.source)

    def choice_points(self, decisions: Decisions) -> dict[str, int]:
        """``{path: number of alternatives}`` of the choices that ``decisions`` go through."""
        points: dict[str, int] = {}

        def record(path, n):
            points[path] = n
            return decisions[path]

        self._walk(self.tree, "", {}, record)
        return points

    def _walk(self, node, path: str, decisions: Decisions, pick):
        """Resolve choices top-down; ``pick(path, n)`` gives the index at each one."""
        if is_choice(node):
            options = node["choice"]
            index = pick(path, len(options))
            decisions[path] = index
            return self._walk(options[index], f"{path}/{index}", decisions, pick)
        if isinstance(node, dict):
            return {k: self._walk(v, join(path, k), decisions, pick) for k, v in node.items()}
        if isinstance(node, list):
            items = [self._walk(v, join(path, i), decisions, pick) for i, v in enumerate(node)]
            return [item for item in items if item is not None]
        return node

    # -- genotypes ---------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genotype:
        """A random valid genotype (redraws combinations that do not connect, bounded)."""
        return self._retry(lambda: self.sample_decisions(rng))

    def encode(self, genotype: Genotype) -> Decisions:
        """The decisions that give ``genotype``.

        Raises:
            GenotypeError: the genotype is not in this space.
        """
        data = {**schema_io.to_dict(genotype), "name": self.tree["name"]}  # any name: the network is what counts
        present = {b["name"] for b in data["branches"]}
        found = _match(self.tree, data, "", present)
        if found is None:
            raise GenotypeError(f"genotype {short_repr(genotype.name)} is not in the space {self.source}")
        return found

    def mutate(self, genotype: Genotype, rng: np.random.Generator, rate: float = 0.1) -> Genotype:
        """Redraw each choice with probability ``rate`` (at least one changes)."""
        parent = self.encode(genotype)

        def draw():
            points = self.choice_points(parent)
            movable = [p for p, n in points.items() if n > 1]
            if not movable:
                return dict(parent)
            forced = movable[int(rng.integers(len(movable)))]

            def pick(path, n):
                old = parent.get(path)
                if old is None:
                    return int(rng.integers(n))
                if path == forced or rng.random() < rate:
                    return int((old + 1 + rng.integers(n - 1)) % n) if n > 1 else old
                return old

            child: Decisions = {}
            self._walk(self.tree, "", child, pick)
            return child

        return self._retry(draw)

    def crossover(self, a: Genotype, b: Genotype, rng: np.random.Generator) -> Genotype:
        """Uniform crossover: each choice point takes one parent's decision at random."""
        parents = (self.encode(a), self.encode(b))

        def draw():
            def pick(path, n):
                known = [p[path] for p in parents if path in p]
                if not known:
                    return int(rng.integers(n))
                return known[int(rng.integers(len(known)))]

            child: Decisions = {}
            self._walk(self.tree, "", child, pick)
            return child

        return self._retry(draw)

    def _retry(self, draw) -> Genotype:
        last = None
        for _ in range(MAX_RETRIES):
            try:
                return self.materialize(draw())
            except GenotypeError as error:
                last = error
        raise GenotypeError(f"{self.source}: no valid network in {MAX_RETRIES} draws; last problem: {last}")

    def size(self) -> int:
        """Number of distinct choice combinations (combinations that do not connect included)."""
        return count(self.tree)


def _normalize(node, annotation, source: str, path: str):
    """Fill every default, so a space compares key for key with a genotype's ``to_dict``."""
    if is_choice(node):
        options = node["choice"]
        if not isinstance(options, list) or not options:
            raise GenotypeError(f"{source}: {path}: choice needs a non-empty list")
        return {"choice": [None if o is None else _normalize(o, annotation, source, f"{path}/{i}")
                           for i, o in enumerate(options)]}
    origin = typing.get_origin(annotation)
    if origin is not None and origin is not tuple:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if node is None else _normalize(node, options[0], source, path)
    if origin is tuple:
        if not isinstance(node, list):
            raise GenotypeError(f"{source}: {path}: expected a list, got {short_repr(node)}")
        item = typing.get_args(annotation)[0]
        return [_normalize(v, item, source, join(path, i)) for i, v in enumerate(node)]
    if annotation is Cell:
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise GenotypeError(f"{source}: {path}: a cell needs a fixed 'op' (choose whole cells instead)")
        if node["op"] not in CELL_TYPES:
            raise GenotypeError(f"{source}: {join(path, 'op')}: unknown op {short_repr(node['op'])}; "
                                f"expected one of {', '.join(CELL_TYPES)}")
        return {"op": node["op"], **_normalize({k: v for k, v in node.items() if k != "op"},
                                               CELL_TYPES[node["op"]], source, path)}
    if dataclasses.is_dataclass(annotation):
        if not isinstance(node, dict):
            raise GenotypeError(f"{source}: {path}: expected a mapping, got {short_repr(node)}")
        hints = typing.get_type_hints(annotation)
        out = {}
        for f in dataclasses.fields(annotation):
            if f.name in node:
                out[f.name] = _normalize(node[f.name], hints[f.name], source, join(path, f.name))
            elif f.default is not dataclasses.MISSING:
                default = f.default
                out[f.name] = list(default) if isinstance(default, tuple) else default
        out.update({k: v for k, v in node.items() if k not in out})  # unknown keys: reported by from_dict
        return out
    if annotation is float and isinstance(node, int) and not isinstance(node, bool):
        return float(node)
    return node


def _prune_dropped_branches(data: dict) -> dict:
    """Drop branches whose source branch was dropped, skip cells and head inputs that read one."""
    branches = list(data["branches"])
    while True:
        names = {b["name"] for b in branches}
        kept = [b for b in branches if b.get("source") is None or b["source"]["branch"] in names]
        if len(kept) == len(branches):
            break
        branches = kept
    branches = [{**b, "cells": [SKIP if _reads(cell, names) is False else cell for cell in b["cells"]]}
                for b in branches]
    head = dict(data["head"])
    for key in ("inputs", "aux"):
        head[key] = [ref for ref in head.get(key, []) if ref["branch"] in names]
    return {**data, "branches": branches, "head": head}


def _reads(cell: dict, names: set[str]) -> bool | None:
    """Whether a cell's context branch is present (None for a cell without context)."""
    context = cell.get("context")
    return None if context is None else context["branch"] in names


def _match(node, value, path: str, present: set[str]) -> Decisions | None:
    """Decisions under ``node`` that reproduce ``value``, or None."""
    if is_choice(node):
        for index, option in enumerate(node["choice"]):
            if option is None:
                continue
            found = _match(option, value, f"{path}/{index}", present)
            if found is not None:
                return {path: index, **found}
        return None
    if value == SKIP and isinstance(node, dict) and _reads(node, present) is False:
        return _first_decisions(node, path)  # a cell reading a dropped branch became skip
    if isinstance(node, dict):
        if not isinstance(value, dict) or set(node) != set(value):
            return None
        out: Decisions = {}
        for key in node:
            found = _match(node[key], value[key], join(path, key), present)
            if found is None:
                return None
            out.update(found)
        return out
    if isinstance(node, list):
        if not isinstance(value, list):
            return None
        out, position = {}, 0
        for index, item in enumerate(node):
            item_path = join(path, index)
            if position < len(value):
                found = _match(item, value[position], item_path, present)
                if found is not None:
                    out.update(found)
                    position += 1
                    continue
            if is_choice(item) and None in item["choice"]:
                out[item_path] = item["choice"].index(None)
            elif _reads_dropped_branch(item, present):
                out.update(_first_decisions(item, item_path))
            else:
                return None
        return out if position == len(value) else None
    return {} if node == value else None


def _reads_dropped_branch(item, present: set[str]) -> bool:
    """A reference to, or a branch forking from, a branch the genotype does not have."""
    if is_choice(item):
        return all(option is not None and _reads_dropped_branch(option, present) for option in item["choice"])
    if not isinstance(item, dict):
        return False
    if set(item) == {"branch", "cell"}:
        return item["branch"] not in present
    return "name" in item and item["name"] not in present


def _first_decisions(node, path: str) -> Decisions:
    """Decisions taking the first alternative everywhere under ``node`` (for pruned parts)."""
    out: Decisions = {}
    if is_choice(node):
        out[path] = 0
        return {**out, **_first_decisions(node["choice"][0], f"{path}/0")}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.update(_first_decisions(value, join(path, key)))
    return out
