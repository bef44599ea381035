"""The pace of a loop: seconds a unit, time left, the ETA text."""

import re

from mobileseg.timebudget.eta import Pace


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_pace_counts_only_the_units_of_this_process():
    clock = Clock(50.0)
    pace = Pace(total=20, done=5, clock=clock)  # resumed after 5 units
    assert pace.unit_seconds(5) is None and pace.remaining_seconds(5) is None and pace.text(5) == "ETA -"
    clock.now = 80.0
    assert pace.unit_seconds(8) == 10.0
    assert pace.remaining_seconds(8) == 120.0
    assert re.fullmatch(r"ETA 2m00s \(at \d\d:\d\d\)", pace.text(8))
    clock.now = 200.0
    assert pace.remaining_seconds(20) == 0.0


def test_the_first_unit_which_traces_is_left_out_once_another_has_ended():
    clock = Clock(0.0)
    pace = Pace(total=10, clock=clock)
    clock.now = 300.0  # the first unit: 100 s of steps and 200 s of tracing
    assert pace.unit_seconds(1) == 300.0 and pace.remaining_seconds(1) == 2700.0
    clock.now = 400.0
    assert pace.unit_seconds(2) == 100.0 and pace.remaining_seconds(2) == 800.0
    clock.now = 520.0
    assert pace.unit_seconds(3) == 110.0
