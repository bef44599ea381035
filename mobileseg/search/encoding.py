"""How a search space's conditional choices become Optuna parameters.

A space's choice tree is conditional: which choices exist depends on earlier ones
(a width inside an ``mbconv`` alternative exists only when the cell chose
``mbconv``). Optuna asks for parameters define-by-run, so each trial calls
``suggest(path, n)`` -> ``trial.suggest_categorical(path, list(range(n)))`` and
the answers become the space's decisions ``{path: index}``. Two encodings:

- ``full`` (the default of the search): every choice point of the tree, active or
  not, is suggested in a fixed order, so every trial has the same parameters: a
  fixed-length chromosome. NSGA-II in Optuna crosses over and inherits only the
  parameters that every completed trial has (its intersection search space) and
  draws the others at random, so with ``active`` a width nested in an op
  alternative would be redrawn for every child instead of inherited. The
  inactive genes ride along unused (neutral, as in a GA's hidden genes); the
  decisions kept for a trial are only the active ones.
- ``active``: only the choices the sample passes through, in the space's walk
  order (the smallest trial record; weaker crossover, see above).

Both walk the space through its public ``SearchSpace.choice_points(decisions)``
(the active choice points and their number of alternatives): it is given a
mapping that answers 0 for a choice not decided yet and remembers which it was
asked for, so the walk reveals the next undecided active choice; it is decided,
and the walk repeats until every active choice is decided. Each walk decides at
least one new choice, so the loop ends after at most as many walks as the tree
has choice points.

Example:
    >>> from mobileseg.arch.space import SearchSpace
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
    >>> all_choice_points(space)
    {'branches[0].cells[1]': 2, 'branches[0].cells[1]/0.width': 2}
    >>> suggest_decisions(space, lambda path, n: n - 1, "active")  # always the last alternative
    {'branches[0].cells[1]': 1}
    >>> suggest_decisions(space, lambda path, n: 0, "full")
    {'branches[0].cells[1]': 0, 'branches[0].cells[1]/0.width': 0}
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from mobileseg.arch.space import Decisions, SearchSpace

ENCODINGS = ("full", "active")

Suggest = Callable[[str, int], int]


class _Probe(dict):
    """Decisions that answer 0 for a choice not decided yet, and list those choices in walk order."""

    def __init__(self, decided: Decisions):
        super().__init__(decided)
        self.undecided: list[str] = []

    def __missing__(self, path: str) -> int:
        self.undecided.append(path)
        return 0


def _probe(space: SearchSpace, decided: Decisions) -> tuple[dict[str, int], list[str]]:
    """The active choice points (undecided ones taking alternative 0) and the undecided ones."""
    probe = _Probe(decided)
    points = space.choice_points(probe)
    return points, probe.undecided


def all_choice_points(space: SearchSpace) -> dict[str, int]:
    """Every choice point of the tree, active or not: ``{path: number of alternatives}``.

    The order is fixed for a space (first alternatives first, depth first).
    """
    found: dict[str, int] = {}
    pending: list[Decisions] = [{}]
    while pending:
        decided = pending.pop()
        points, _ = _probe(space, decided)
        new = [(path, n) for path, n in points.items() if path not in found]
        for path, n in new:
            found[path] = n
        for path, n in reversed(new):  # explore each new point's other alternatives
            pending.extend({**decided, path: index} for index in range(n - 1, 0, -1))
    return found


def active_decisions(space: SearchSpace, suggest: Suggest) -> Decisions:
    """Decide the active choices one at a time, in walk order, with ``suggest(path, n)``."""
    decided: Decisions = {}
    while True:
        points, undecided = _probe(space, decided)
        if not undecided:
            return {path: decided[path] for path in points}
        path = undecided[0]
        decided[path] = _checked(path, suggest(path, points[path]), points[path])


def suggest_decisions(space: SearchSpace, suggest: Suggest, encoding: str = "full",
                      points: dict[str, int] | None = None) -> Decisions:
    """The decisions of one sample whose choices come from ``suggest(path, n) -> index``.

    Args:
        space: the search space.
        suggest: gives an index in ``0..n-1`` for a choice point (e.g. an Optuna trial's
            ``suggest_categorical``).
        encoding: ``full`` (every choice point is suggested) or ``active`` (only the
            choices the sample goes through); see the module docstring.
        points: ``all_choice_points(space)``, to skip recomputing it (``full`` only).

    Returns:
        The active decisions, ready for ``space.materialize``.

    Raises:
        ValueError: an unknown encoding, or ``suggest`` giving an index out of range.
    """
    if encoding == "active":
        return active_decisions(space, suggest)
    if encoding != "full":
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    genes = {path: _checked(path, suggest(path, n), n)
             for path, n in (points if points is not None else all_choice_points(space)).items()}
    return {path: genes[path] for path in space.choice_points(genes)}


def _checked(path: str, index, n: int) -> int:
    try:
        value = operator.index(index)
    except TypeError:
        value = None
    if isinstance(index, bool) or value is None or not 0 <= value < n:
        raise ValueError(f"{path}: suggested index {index!r} is not in 0..{n - 1}")
    return value
