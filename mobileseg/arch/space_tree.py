"""Walking the plain-data tree of a search space: choices, paths, concrete values.

A space (`mobileseg.arch.space`) is a genotype dict in which any value may be
``{choice: [a, b, ...]}``. This module is the one home of reading such a tree; the
space itself, the supernet plan, the latency table's enumeration and the search's
choice rows all walk it with these functions:

- `is_choice`: whether a node is a choice;
- `join`: the path of a child (``branches[0].cells[2]``; ``/1`` reads "inside alternative 1");
- `alternatives`: every concrete value of a node with the decisions that give it, and
  `expand` the values alone; a ``null`` alternative is ``None``, and an item of a list that a
  choice drops (``None``) is left out of the list, as the space does when it materializes;
- `count`: how many concrete values a node has (``null`` alternatives included);
- `nodes_by_path`: every node of a tree under its path, alternatives included.

Example:
    >>> node = {"op": "conv", "width": {"choice": [8, 16]}, "kernel": {"choice": [3, 5]}}
    >>> count(node), expand(node)[-1]
    (4, {'op': 'conv', 'width': 16, 'kernel': 5})
    >>> expand([1, {"choice": [None, 2]}])
    [[1], [1, 2]]
"""

from __future__ import annotations

import math


def is_choice(node) -> bool:
    """Whether ``node`` is ``{choice: [...]}``.

    Example:
        >>> is_choice({"choice": [1, 2]}), is_choice({"choice": [1], "width": 2})
        (True, False)
    """
    return isinstance(node, dict) and set(node) == {"choice"}


def join(path: str, key) -> str:
    """The path of the child ``key`` (an index or a field name) of the node at ``path``.

    Example:
        >>> join("branches", 0), join("branches[0]", "cells"), join("", "head")
        ('branches[0]', 'branches[0].cells', 'head')
    """
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)


def alternatives(node, path: str) -> list[tuple[tuple[tuple[str, int], ...], object]]:
    """Every concrete value of a space node with the decisions that give it: ``[((path, index), ...), value]``.

    Example:
        >>> [(d, v["width"]) for d, v in alternatives({"op": "conv", "width": {"choice": [8, 16]}}, "c")]
        [((('c.width', 0),), 8), ((('c.width', 1),), 16)]
    """
    if is_choice(node):
        out = []
        for index, option in enumerate(node["choice"]):
            for decisions, value in ([((), None)] if option is None else alternatives(option, f"{path}/{index}")):
                out.append((((path, index), *decisions), value))
        return out
    if isinstance(node, (dict, list)):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        combos = [[]]
        for key in keys:
            combos = [[*combo, item] for combo in combos for item in alternatives(node[key], join(path, key))]
        out = []
        for combo in combos:
            decisions = tuple(d for part, _ in combo for d in part)
            values = [value for _, value in combo]
            out.append((decisions, dict(zip(keys, values)) if isinstance(node, dict)
                        else [value for value in values if value is not None]))
        return out
    return [((), node)]


def expand(node) -> list:
    """Every concrete value a space node can take (all combinations of its choices).

    Example:
        >>> expand({"op": "conv", "width": {"choice": [8, 16]}, "kernel": {"choice": [3, 5]}})[-1]
        {'op': 'conv', 'width': 16, 'kernel': 5}
    """
    return [value for _, value in alternatives(node, "")]


def count(node) -> int:
    """How many concrete values ``node`` has: ``len(expand(node))`` without listing them.

    Example:
        >>> count({"width": {"choice": [8, 16, None]}, "kernel": {"choice": [3, 5]}})
        6
    """
    if is_choice(node):
        return sum(1 if option is None else count(option) for option in node["choice"])
    if isinstance(node, dict):
        return math.prod(count(v) for v in node.values())
    if isinstance(node, list):
        return math.prod(count(v) for v in node)
    return 1


def nodes_by_path(tree) -> dict[str, object]:
    """Every node of a space tree under its choice path (``branches[2]/1.cells[0]``), alternatives included."""
    out: dict[str, object] = {}

    def visit(node, path):
        out[path] = node
        if is_choice(node):
            for index, option in enumerate(node["choice"]):
                if option is not None:
                    visit(option, f"{path}/{index}")
        elif isinstance(node, dict):
            for key, value in node.items():
                visit(value, join(path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                visit(value, join(path, index))

    visit(tree, "")
    return out
