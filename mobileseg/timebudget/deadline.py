"""When a stage must end, and whether one more epoch or generation fits before it.

A stage's loop asks at its checkpoint boundary (after an epoch is saved, after a generation is
stored) ``deadline.fits(seconds of the next unit)``; when it does not, the stage stops there, says
so with `Deadline.cut_message`, and the run goes on with what it has. A deadline of None lets
everything fit (no time budget).

Example:
    >>> now = iter([100.0, 100.0]).__next__
    >>> deadline = Deadline("supernet", at=150.0, clock=now)
    >>> deadline.fits(40.0), deadline.fits(60.0)
    (True, False)
    >>> Deadline("train", None).fits(1e9)
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable

CUT = "cut by the time budget"
"""How every cut message starts (the pipeline recognises a training cut by it)."""


class Deadline:
    """The end of one stage's share of the time budget.

    Args:
        stage: the stage's name, for the messages.
        at: the instant (`time.time` seconds) the stage should end by; None: no deadline.
        clock: the current `time.time` (tests pass their own).
    """

    def __init__(self, stage: str, at: float | None, clock: Callable[[], float] = time.time):
        self.stage, self.at, self.clock = stage, at, clock

    def fits(self, unit_seconds: float | None) -> bool:
        """True when one more unit of ``unit_seconds`` ends by the deadline (unknown length: True)."""
        return self.at is None or unit_seconds is None or self.clock() + unit_seconds <= self.at

    def cut_message(self, done: str, unit: str) -> str:
        """``supernet: cut by the time budget after 3 of 10 epochs: ...``, naming the deadline."""
        at = time.strftime("%H:%M:%S", time.localtime(self.at)) if self.at is not None else "-"
        return (f"{self.stage}: {CUT} after {done}: another {unit} would end past {at}, the end of its share; "
                "going on with what it has")
