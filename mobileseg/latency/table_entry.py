"""One measured block latency: a `LatencyTable` entry, also what the persistent cache stores."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Mapping

# absent from tables written before phones were measured and blocks were converted repeatedly
_OPTIONAL_ENTRY_FIELDS = ("p95_ms", "conversions", "conversion_medians_ms")


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def _tuple_or_none(value) -> tuple | None:
    return None if value is None else tuple(value)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class TableEntry:
    """The measured latency of one block.

    Args:
        median_ms, p90_ms, std_ms, min_ms: statistics of the timed invokes; all but the
            median may be None when the measurer does not report them (a phone's
            ``benchmark_model`` gives ``p95_ms``, not ``p90_ms``).
        runs: timed invokes.
        xnnpack_partitions: XNNPACK partitions of the block alone (None when the measurer
            does not report them).
        fallback_ops: ops of the block left to the built-in kernels (None when not reported).
        measured_at: ISO 8601 UTC time of the measurement.
        p95_ms: 95th percentile, when the measurer reports it (``benchmark_model``).
        conversions: independent conversions (fresh weights and calibration) the block was
            timed over; the entry is the one with the median latency (see `LatencyTable.build`).
        conversion_medians_ms: the median latency of each conversion, when there were several.

    Example:
        >>> entry = TableEntry(1.0, 1.2, 0.1, 0.9, 50, 1, (), "2025-01-01T00:00:00+00:00")
        >>> TableEntry.from_dict(entry.to_dict()) == entry
        True
    """

    median_ms: float
    p90_ms: float | None
    std_ms: float | None
    min_ms: float | None
    runs: int
    xnnpack_partitions: int | None
    fallback_ops: tuple[str, ...] | None
    measured_at: str
    p95_ms: float | None = None
    conversions: int = 1
    conversion_medians_ms: tuple[float, ...] | None = None

    @classmethod
    def from_record(cls, record, measured_at: str | None = None) -> TableEntry:
        """From a `LatencyRecord`, or a dict with its keys (another device's measurer).

        Raises:
            ValueError: a record without ``median_ms``, ``p90_ms``, ``std_ms``, ``min_ms``,
                ``runs``, ``xnnpack_partitions`` or ``fallback_ops`` (the missing ones named).
        """
        needed = ("median_ms", "p90_ms", "std_ms", "min_ms", "runs", "xnnpack_partitions",
                  "fallback_ops")
        if isinstance(record, Mapping):
            get = record.__getitem__
            missing = [name for name in needed if name not in record]
        else:
            get = functools.partial(getattr, record)
            missing = [name for name in needed if not hasattr(record, name)]
        if missing:
            raise ValueError(f"a latency table entry needs {', '.join(needed)}; the measurer's "
                             f"record lacks {', '.join(missing)}")
        optional = (record.get("p95_ms") if isinstance(record, Mapping)
                    else getattr(record, "p95_ms", None))
        return cls(median_ms=float(get("median_ms")), p90_ms=_float_or_none(get("p90_ms")),
                   std_ms=_float_or_none(get("std_ms")), min_ms=_float_or_none(get("min_ms")),
                   runs=int(get("runs")),
                   xnnpack_partitions=(None if get("xnnpack_partitions") is None
                                       else int(get("xnnpack_partitions"))),
                   fallback_ops=_tuple_or_none(get("fallback_ops")),
                   measured_at=measured_at or _now(),
                   p95_ms=_float_or_none(optional))

    def to_dict(self) -> dict:
        """JSON form (``fallback_ops`` as a list)."""
        return {**dataclasses.asdict(self),
                "fallback_ops": None if self.fallback_ops is None else list(self.fallback_ops),
                "conversion_medians_ms": (None if self.conversion_medians_ms is None
                                          else list(self.conversion_medians_ms))}

    @classmethod
    def from_dict(cls, data: dict) -> TableEntry:
        """Inverse of `to_dict`; unknown or missing keys raise ``ValueError`` naming them
        (``p95_ms``, ``conversions`` and ``conversion_medians_ms`` may be absent)."""
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields))
        missing = [name for name in fields if name not in data and name not in _OPTIONAL_ENTRY_FIELDS]
        if unknown or missing:
            raise ValueError(f"unknown keys {unknown}, missing keys {missing}")
        return cls(**{**data, "fallback_ops": _tuple_or_none(data["fallback_ops"]),
                      "conversion_medians_ms": _tuple_or_none(data.get("conversion_medians_ms"))})

    def delegation_varies(self) -> bool:
        """Whether another conversion of the block may be delegated differently.

        XNNPACK takes some int8 ops only for some quantization parameters (an int8
        BATCH_MATMUL only when its second input's zero point is 0), and those come from the
        random weights and calibration data of each conversion. A block fully delegated in
        one partition has nothing left to vary; one with ops left to the built-in kernels (or
        several partitions) does.
        """
        return bool(self.fallback_ops) or (self.xnnpack_partitions or 1) > 1
