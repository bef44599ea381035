"""The correction from "sum of isolated blocks" to "whole network", fitted per device.

A network is not exactly the sum of its blocks measured alone: the stem, head and
input/output (de)quantization are not blocks, one invoke replaces many, and caches
and XNNPACK's operator fusion behave differently across block boundaries. The
correction is fitted by least squares on a few networks measured end to end on
the same device as the table::

    measured_ms  ~=  scale * sum_of_blocks_ms + offset_ms

Two forms:

- ``offset`` (scale fixed at 1): one number, the median gap; needs one network.
  This is what ``auto`` picks with fewer than 3 networks or block sums that span
  less than 1.5x, because a slope fitted over a narrow range is mostly noise.
- ``affine``: scale and offset; ``auto`` picks it with 3+ networks spanning 1.5x+,
  where a per-block error (e.g. the per-invoke cost that each isolated block pays
  once) shows up as a slope. A fitted scale <= 0 would rank bigger networks as
  faster, so ``auto`` falls back to ``offset`` then.

The chosen form, the reason and the residual RMS are stored with the points.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

KINDS = ("none", "offset", "affine")
AFFINE_MIN_POINTS = 3
AFFINE_MIN_SPAN = 1.5


@dataclasses.dataclass(frozen=True)
class Overhead:
    """``scale * blocks_ms + offset_ms``: the fitted correction of one latency table.

    Args:
        kind: ``none`` (identity), ``offset`` or ``affine``.
        scale: multiplies the sum of block latencies (1 unless ``affine``).
        offset_ms: added once per network.
        points: the ``(blocks_ms, measured_ms)`` pairs it was fitted on.
        rmse_ms: root mean square residual on those points.
        reason: why this form was chosen.

    Example:
        >>> Overhead("offset", offset_ms=0.5).apply(10.0)
        10.5
        >>> Overhead.from_dict(Overhead("affine", 1.1, 0.2).to_dict()) == Overhead("affine", 1.1, 0.2)
        True
    """

    kind: str = "none"
    scale: float = 1.0
    offset_ms: float = 0.0
    points: tuple[tuple[float, float], ...] = ()
    rmse_ms: float | None = None
    reason: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"overhead kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in self.points))

    def apply(self, blocks_ms: float) -> float:
        """The predicted network latency for a sum of block latencies."""
        return self.scale * blocks_ms + self.offset_ms

    def to_dict(self) -> dict:
        """JSON-serialisable form, as stored in the latency table."""
        return {"kind": self.kind, "scale": self.scale, "offset_ms": self.offset_ms,
                "points": [list(point) for point in self.points], "rmse_ms": self.rmse_ms,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> Overhead:
        """Inverse of `to_dict`; unknown or missing keys raise ``ValueError`` naming them."""
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields))
        missing = [name for name in fields if name not in data]
        if unknown or missing:
            raise ValueError(f"overhead: unknown keys {unknown}, missing keys {missing}")
        return cls(**{**data, "points": tuple(tuple(point) for point in data["points"])})


def fit_overhead(blocks_ms: Sequence[float], measured_ms: Sequence[float],
                 kind: str = "auto") -> Overhead:
    """Robust (Theil-Sen) fit of ``measured_ms ~= scale * blocks_ms + offset_ms``.

    Args:
        blocks_ms: per network, the sum of its blocks' table latencies.
        measured_ms: per network, its end-to-end median latency on the same device.
        kind: ``auto`` (see the module doc), ``offset`` or ``affine``.

    Raises:
        ValueError: no points, unequal lengths, or ``affine`` with fewer than 3 points.

    Example:
        >>> fit = fit_overhead([10.0, 20.0, 40.0], [12.0, 23.0, 45.0])
        >>> fit.kind, round(fit.scale, 3), round(fit.offset_ms, 3)
        ('affine', 1.1, 1.0)
        >>> fit_overhead([10.0, 11.0], [12.0, 13.5]).offset_ms
        2.25
        >>> fit = fit_overhead([10.0, 20.0, 30.0, 40.0, 50.0], [11.0, 21.0, 60.0, 41.0, 51.0])  # one outlier
        >>> round(fit.scale, 3), round(fit.offset_ms, 3)
        (1.0, 1.0)
    """
    x = np.asarray(blocks_ms, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"blocks_ms and measured_ms must be equal-length lists, got "
                         f"{len(x)} and {len(y)}")
    if x.size == 0:
        raise ValueError("fit_overhead needs at least one end-to-end measurement")
    if kind not in ("auto", "offset", "affine"):
        raise ValueError(f"kind must be auto, offset or affine, got {kind!r}")
    if kind == "affine" and x.size < AFFINE_MIN_POINTS:
        raise ValueError(f"an affine overhead needs >= {AFFINE_MIN_POINTS} networks, got {x.size}")
    points = tuple(zip(x.tolist(), y.tolist(), strict=True))

    def offset_fit(reason: str) -> Overhead:
        offset = float(np.median(y - x))
        rmse = float(np.sqrt(np.mean((x + offset - y) ** 2)))
        return Overhead("offset", 1.0, offset, points, rmse, reason)

    span = float(x.max() / x.min()) if x.min() > 0 else float("inf")
    if kind == "offset":
        return offset_fit("requested")
    if kind == "auto" and x.size < AFFINE_MIN_POINTS:
        return offset_fit(f"{x.size} network(s) < {AFFINE_MIN_POINTS}: too few for a slope")
    if kind == "auto" and span < AFFINE_MIN_SPAN:
        return offset_fit(f"block sums span {span:.2f}x < {AFFINE_MIN_SPAN}x: a slope would be noise")
    first, second = np.triu_indices(x.size, k=1)
    apart = x[second] != x[first]
    if not apart.any():
        return offset_fit("every network has the same block sum: no slope to fit")
    scale = float(np.median((y[second] - y[first])[apart] / (x[second] - x[first])[apart]))
    offset = float(np.median(y - scale * x))
    if kind == "auto" and scale <= 0:
        return offset_fit(f"the fitted scale {scale:.3f} <= 0 would rank bigger networks faster")
    rmse = float(np.sqrt(np.mean((scale * x + offset - y) ** 2)))
    reason = "requested" if kind == "affine" else (
        f"{x.size} networks spanning {span:.2f}x >= {AFFINE_MIN_SPAN}x")
    return Overhead("affine", float(scale), float(offset), points, rmse, reason)
