"""The measured pace of a loop (epochs, generations): the seconds a unit takes and the ETA of the rest.

Example:
    >>> clock = iter([100.0, 160.0, 160.0]).__next__
    >>> pace = Pace(total=10, done=2, clock=clock)      # resumed after 2 of 10 units, at t=100
    >>> pace.unit_seconds(4)                            # 2 units in this process by t=160
    30.0
    >>> pace.remaining_seconds(4)                       # 6 left at 30 s
    180.0
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mobileseg.timebudget.duration import format_duration


class Pace:
    """Units of a loop done in this process, and the time they took.

    Args:
        total: units the loop runs in all.
        done: units done before it started (a resumed run).
        clock: seconds (default `time.monotonic`).
    """

    def __init__(self, total: int, done: int = 0, clock: Callable[[], float] = time.monotonic):
        self.total, self.first, self.clock = int(total), int(done), clock
        self.started = clock()
        self.first_ended: float | None = None

    def unit_seconds(self, done: int) -> float | None:
        """Mean seconds of a unit so far in this process (None before the first one ends).

        The first unit of a process also traces the compiled steps (CamVid at 184x240, idle: a
        supernet's first two epochs took 420 s in all, the third 142 s): once asked when it ended
        and again after another, the mean leaves it out.

        Example:
            >>> clock = iter([0.0, 100.0, 110.0, 120.0]).__next__
            >>> pace = Pace(total=10, clock=clock)
            >>> pace.unit_seconds(1), pace.unit_seconds(2), pace.unit_seconds(3)
            (100.0, 10.0, 10.0)
        """
        ran, now = done - self.first, self.clock()
        if ran == 1 and self.first_ended is None:
            self.first_ended = now
        if ran >= 2 and self.first_ended is not None:
            return (now - self.first_ended) / (ran - 1)
        return (now - self.started) / ran if ran > 0 else None

    def remaining_seconds(self, done: int) -> float | None:
        """Seconds the units left should take at the pace so far (None before it is known)."""
        unit = self.unit_seconds(done)
        return None if unit is None else unit * max(0, self.total - done)

    def text(self, done: int) -> str:
        """``ETA 3m00s (at 19:42)``: the time left at the pace so far and the clock time it ends; ``ETA -``
        before the first unit ends."""
        left = self.remaining_seconds(done)
        if left is None:
            return "ETA -"
        return f"ETA {format_duration(left)} (at {time.strftime('%H:%M', time.localtime(time.time() + left))})"
