"""Network latency from the block table: the `LatencyModel` the search talks to (DESIGN.md, point 5).

``latency_ms(genotype) = overhead.apply(sum of the table's median_ms over the
genotype's blocks)``. The genotype is opaque here: a ``signatures_of`` callable
(from the architecture code) turns it into its list of `BlockSignature` s, one
per block occurrence, so a block repeated three times counts three times.

Backends (`latency_model_from_spec`):

- ``table:FILE``: read-only; any device's table (a phone's, a colleague's). A
  block missing from it is a `MissingBlockError` naming the block and the file.
- ``local`` / ``local:FILE``: this machine; blocks missing from the table are
  built, converted, measured and saved into it on the fly. The table must have
  been measured here (same CPU, runtime, threads...), else `DeviceMismatchError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.overhead import Overhead, fit_overhead
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import DeviceMismatchError, LatencyTable, MissingBlockError

__all__ = ["LatencyModel", "TableLatencyModel", "LocalLatencyModel", "MissingBlockError",
           "DeviceMismatchError", "calibrate_overhead", "latency_model_from_spec"]

SignaturesOf = Callable[[Any], Sequence[BlockSignature]]


@runtime_checkable
class LatencyModel(Protocol):
    """What the search needs: a network's predicted latency in milliseconds."""

    def latency_ms(self, genotype: Any) -> float:
        """Predicted end-to-end latency of the network the genotype describes."""
        ...


class TableLatencyModel:
    """Sum of a table's block latencies plus the table's fitted overhead.

    Args:
        table: a `LatencyTable` (e.g. ``LatencyTable.load(path)``).
        signatures_of: genotype -> its blocks' signatures, one per block occurrence.
        overhead: the correction to apply; default: the table's fitted overhead, or
            none (the plain sum) if it has not been fitted.

    Example:
        >>> from mobileseg.latency.device import local_fingerprint
        >>> a = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
        >>> b = BlockSignature("conv", (8, 8, 4), (4, 4, 8), kernel=3, stride=2)
        >>> table = LatencyTable(local_fingerprint(), overhead=Overhead("offset", offset_ms=0.5))
        >>> for sig, ms in [(a, 1.0), (b, 2.0)]:
        ...     table.add(sig, {"median_ms": ms, "p90_ms": ms, "std_ms": 0.0, "min_ms": ms,
        ...                     "runs": 1, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> TableLatencyModel(table, signatures_of=list).latency_ms([a, a, b])
        4.5
    """

    def __init__(self, table: LatencyTable, signatures_of: SignaturesOf,
                 overhead: Overhead | None = None):
        self.table = table
        self.signatures_of = signatures_of
        self._overhead = overhead

    @property
    def overhead(self) -> Overhead:
        """The correction in use: the one given, else the table's, else the identity."""
        return self._overhead or self.table.overhead or Overhead()

    def blocks_ms(self, genotype: Any) -> float:
        """The plain sum of the genotype's block medians (no overhead).

        Raises:
            MissingBlockError: a block not in the table (named, with the table file).
        """
        return float(sum(self.table[signature].median_ms for signature in self.signatures_of(genotype)))

    def latency_ms(self, genotype: Any) -> float:
        """``overhead.apply(blocks_ms(genotype))``."""
        return self.overhead.apply(self.blocks_ms(genotype))


class LocalLatencyModel(TableLatencyModel):
    """A `TableLatencyModel` that measures missing blocks on this machine and saves them.

    Args:
        table_path: the table file; created if missing. An existing file must carry
            this machine's fingerprint at ``threads`` (else `DeviceMismatchError`).
        signatures_of: genotype -> its blocks' signatures.
        make_model: signature -> the block alone as a `keras.Model` at its input shape.
        threads: LiteRT threads.
        quantization: the table's mode (``int8`` as shipped; ``fp16``/``fp32`` on request).
        measurer: flatbuffer -> `LatencyRecord`; default `measure_tflite` at ``threads``.
        convert: ``(model, quantization) -> bytes``; default the export converter.
        overhead: see `TableLatencyModel`.
        progress: show a progress bar while measuring missing blocks.

    Example:
        >>> import pathlib, tempfile
        >>> from mobileseg.latency.testing import block_model
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.json"
        >>> model = LocalLatencyModel(path, list, block_model, progress=False)
        >>> sig = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
        >>> model.latency_ms([sig, sig]) > 0, len(LatencyTable.load(path))
        (True, 1)
    """

    def __init__(self, table_path: str | os.PathLike, signatures_of: SignaturesOf,
                 make_model: Callable[[BlockSignature], object], threads: int = 1,
                 quantization: str = "int8", measurer: Callable[[bytes], object] | None = None,
                 convert: Callable[[object, str], bytes] | None = None,
                 overhead: Overhead | None = None, progress: bool = True):
        table = LatencyTable.load_or_create(table_path, local_fingerprint(threads), quantization)
        super().__init__(table, signatures_of, overhead)
        self.make_model = make_model
        self.measurer = measurer
        self.convert = convert
        self.progress = progress

    def measure_missing(self, genotypes: Iterable[Any]) -> list[str]:
        """Measure every block of these genotypes that the table lacks; returns the new keys."""
        signatures = [signature for genotype in genotypes for signature in self.signatures_of(genotype)]
        return self.table.build(signatures, self.make_model, self.measurer, convert=self.convert,
                                progress=self.progress)

    def blocks_ms(self, genotype: Any) -> float:
        """Measures the genotype's missing blocks first, then sums."""
        self.measure_missing([genotype])
        return super().blocks_ms(genotype)


def calibrate_overhead(model: TableLatencyModel, genotypes: Sequence[Any],
                       measure_network: Callable[[Any], float], kind: str = "auto",
                       save: bool = True) -> Overhead:
    """Fit the table's overhead on a few networks measured end to end on the table's device.

    Args:
        model: the latency model whose table gets the overhead.
        genotypes: a few networks, ideally spanning small to large (3+ for a slope).
        measure_network: genotype -> its measured end-to-end median in ms on the same
            device, converted as shipped (e.g. build, ``convert(..., "int8")``,
            ``measure_tflite(...).median_ms``).
        kind: ``auto``, ``offset`` or ``affine`` (see `mobileseg.latency.overhead`).
        save: write the table (needs its path) with the new overhead.

    Returns:
        The fitted `Overhead`, now also ``model.table.overhead``.

    Example:
        >>> from mobileseg.latency.device import local_fingerprint
        >>> a = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
        >>> table = LatencyTable(local_fingerprint())
        >>> table.add(a, {"median_ms": 1.0, "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0,
        ...               "runs": 1, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> model = TableLatencyModel(table, list)
        >>> fit = calibrate_overhead(model, [[a], [a, a]], lambda g: len(g) + 0.3, save=False)
        >>> fit.kind, round(model.latency_ms([a, a, a]), 6)
        ('offset', 3.3)
    """
    blocks = [model.blocks_ms(genotype) for genotype in genotypes]
    measured = [float(measure_network(genotype)) for genotype in genotypes]
    overhead = fit_overhead(blocks, measured, kind)
    model.table.overhead = overhead
    if save:
        model.table.save()
    return overhead


def latency_model_from_spec(spec: str, signatures_of: SignaturesOf, *,
                            make_model: Callable[[BlockSignature], object] | None = None,
                            default_table: str | os.PathLike | None = None, threads: int = 1,
                            quantization: str = "int8", progress: bool = True) -> LatencyModel:
    """Build the latency model a ``--latency`` flag names.

    Args:
        spec: ``table:FILE``, ``local`` (uses ``default_table``) or ``local:FILE``.
        signatures_of: genotype -> its blocks' signatures.
        make_model: signature -> block model; required by ``local``.
        default_table: the table file of ``local`` without a path (e.g.
            ``runs/NAME/latency_table.json``).
        threads, quantization, progress: for ``local`` (see `LocalLatencyModel`).

    Raises:
        ValueError: an unknown backend (the known ones are listed) or a missing argument.
        FileNotFoundError / TableFormatError: a ``table:`` file that is absent or corrupt.

    Example:
        >>> latency_model_from_spec("gpu-cloud", list)
        Traceback (most recent call last):
        ...
        ValueError: unknown latency backend 'gpu-cloud'; expected table:FILE, local or local:FILE
    """
    backend, _, argument = spec.partition(":")
    if backend == "table":
        if not argument:
            raise ValueError("latency backend 'table:' needs a file: table:PATH/latency_table.json")
        return TableLatencyModel(LatencyTable.load(argument), signatures_of)
    if backend == "local":
        path = argument or default_table
        if not path:
            raise ValueError("latency backend 'local' needs a table file: local:FILE, or a default table")
        if make_model is None:
            raise ValueError("latency backend 'local' needs make_model (signature -> block model)")
        return LocalLatencyModel(path, signatures_of, make_model, threads=threads,
                                 quantization=quantization, progress=progress)
    raise ValueError(f"unknown latency backend {spec!r}; expected table:FILE, local or local:FILE")
