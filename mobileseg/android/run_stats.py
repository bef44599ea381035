"""The statistics line ``benchmark_model`` prints for one phase, and its numbers.

``count=N first= curr= min= max= avg= std=``, with or without ``p5= median= p95=``, and the
single-run form ``count=1 curr=X`` / ``count=N curr=X(all same)``; numbers may be written in
scientific notation. The whole output is parsed by `mobileseg.android.benchmark_output`.
"""

from __future__ import annotations

import dataclasses
import math
import re

from mobileseg.android.errors import BenchmarkOutputError

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
"""A number as ``benchmark_model`` prints it (a regular expression)."""
STATS_LINE = re.compile(r"^count=(\d+)\b(.*)$")
"""A phase's statistics line; group 1 is the run count."""
_KV = re.compile(rf"(\w+)=({NUM})")


def finite_number(text: str) -> float:
    """A number ``benchmark_model`` printed, which must be finite.

    Raises:
        BenchmarkOutputError: nan or inf.
    """
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        raise BenchmarkOutputError(f"benchmark_model printed a non-finite number: {text}")
    return value


def optional_number(text: str) -> float | None:
    """A number that is legitimately missing (nan) when its phase had no run."""
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


@dataclasses.dataclass(frozen=True)
class RunStats:
    """The statistics ``benchmark_model`` prints for one phase (warm-up or regular runs).

    Times are in microseconds, as printed. ``std_us`` is the population standard deviation;
    the percentiles are None for builds that do not print them.

    Args:
        count: number of runs.
        first_us, curr_us, min_us, max_us, avg_us, std_us: the run times.
        p5_us, median_us, p95_us: percentiles, when printed.

    Example:
        >>> RunStats.parse("count=3 first=12 curr=10 min=10 max=12 avg=10.6667 std=1").avg_us
        10.6667
    """

    count: int
    first_us: float
    curr_us: float
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None

    @classmethod
    def parse(cls, line: str) -> "RunStats":
        """Read one ``count=...`` line (prefix already removed).

        Args:
            line: e.g. ``count=50 first=9 curr=8 min=8 max=9 avg=8.2 std=0`` or
                ``count=1 curr=19105`` or ``count=4 curr=7(all same) p5=7 median=7 p95=7``.

        Example:
            >>> RunStats.parse("count=4 curr=7(all same)").std_us
            0.0
        """
        match = STATS_LINE.match(line.strip())
        if not match:
            raise BenchmarkOutputError(f"not a benchmark_model statistics line: {line!r}")
        count = int(match.group(1))
        values = {key: finite_number(value) for key, value in _KV.findall(match.group(2))}
        if count == 0:
            raise BenchmarkOutputError("benchmark_model reports count=0: no run finished")
        if "curr" not in values:
            raise BenchmarkOutputError(f"statistics line without curr=: {line!r}")
        curr = values["curr"]
        if "avg" not in values:  # single run, or every run took the same time
            if {"first", "min", "max", "std"} & set(values):
                raise BenchmarkOutputError(f"statistics line without avg=: {line!r}")
            return cls(count, curr, curr, curr, curr, curr, 0.0,
                       values.get("p5"), values.get("median"), values.get("p95"))
        missing = [k for k in ("first", "min", "max", "std") if k not in values]
        if missing:
            raise BenchmarkOutputError(
                f"statistics line is missing {', '.join(missing)}: {line!r}")
        return cls(count, values["first"], curr, values["min"], values["max"], values["avg"],
                   values["std"], values.get("p5"), values.get("median"), values.get("p95"))
