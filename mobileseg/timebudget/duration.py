"""Durations as people write them (``45m``, ``2h``, ``1h30m``, ``90s``, ``600``) and as the plan prints them.

Example:
    >>> parse_duration("1h30m"), parse_duration("45m"), parse_duration("90s"), parse_duration("600")
    (5400.0, 2700.0, 90.0, 600.0)
    >>> format_duration(5400), format_duration(185), format_duration(7.25)
    ('1h30m', '3m05s', '7.2s')
"""

from __future__ import annotations

import re

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


class DurationError(ValueError):
    """A duration that cannot be read; the message quotes it and shows the accepted forms."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number of seconds, or parts ``<number>h``, ``<number>m``, ``<number>s`` in that order.

    Raises:
        DurationError: empty, malformed, units out of order or repeated, or not positive.
    """
    value = str(text).strip().lower()
    hint = "expected e.g. 45m, 2h, 1h30m, 90s or a number of seconds"
    if not value:
        raise DurationError(f"an empty duration: {hint}")
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        units = [unit for _, unit in parts]
        if not parts or "".join(number + unit for number, unit in parts) != value or \
                units != sorted(set(units), key="hms".index):
            raise DurationError(f"{text!r}: not a duration; {hint}") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise DurationError(f"{text!r}: must be a positive, finite duration; {hint}")
    return seconds


def format_duration(seconds: float) -> str:
    """``1h05m`` from an hour up, ``3m05s`` from a minute up, ``7.2s`` below."""
    if seconds >= 3600:
        hours, rest = divmod(int(round(seconds / 60)), 60)
        return f"{hours}h{rest:02d}m"
    if seconds >= 60:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes}m{rest:02d}s"
    return f"{seconds:.1f}s"
