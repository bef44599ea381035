"""Network latency from the block table: the `LatencyModel` the search talks to.

See docs/architecture.md, sections 3 and 4.

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
- ``adb`` / ``adb:FILE``: the same on an Android phone over adb (``serial``): each
  missing block is pushed and timed with ``benchmark_model``
  (`mobileseg.latency.adb_backend`); the table must be that phone's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.overhead import Overhead, fit_overhead
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import DeviceMismatchError, LatencyTable, MissingBlockError

__all__ = ["LatencyModel", "TableLatencyModel", "MeasuringLatencyModel", "LocalLatencyModel",
           "MissingBlockError",
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


class MeasuringLatencyModel(TableLatencyModel):
    """A `TableLatencyModel` that measures the blocks its table lacks, and saves them.

    Args:
        table: the table to read and fill (with a ``path`` to be saved after every block).
        signatures_of: genotype -> its blocks' signatures.
        make_model: signature -> the block alone as a `keras.Model` at its input shape.
        measurer: flatbuffer -> `LatencyRecord` or record dict, on the table's device; None:
            LiteRT on this machine (`LatencyTable.build`'s default, which checks the fingerprint).
        convert: ``(model, quantization) -> bytes``; default the export converter.
        overhead: see `TableLatencyModel`.
        progress: show a progress bar while measuring missing blocks.
        conversions: how many conversions a block whose delegation varies is timed over
            (the median is kept; see `LatencyTable.build`).
    """

    def __init__(self, table: LatencyTable, signatures_of: SignaturesOf,
                 make_model: Callable[[BlockSignature], object],
                 measurer: Callable[[bytes], object] | None = None,
                 convert: Callable[[object, str], bytes] | None = None,
                 overhead: Overhead | None = None, progress: bool = True, conversions: int = 3):
        super().__init__(table, signatures_of, overhead)
        self.make_model = make_model
        self.measurer = measurer
        self.convert = convert
        self.progress = progress
        self.conversions = conversions

    def measure_missing(self, genotypes: Iterable[Any]) -> list[str]:
        """Measure every block of these genotypes that the table lacks; returns the new keys."""
        signatures = [signature for genotype in genotypes for signature in self.signatures_of(genotype)]
        return self.table.build(signatures, self.make_model, self.measurer, convert=self.convert,
                                progress=self.progress, conversions=self.conversions)

    def blocks_ms(self, genotype: Any) -> float:
        """Measures the genotype's missing blocks first, then sums."""
        self.measure_missing([genotype])
        return super().blocks_ms(genotype)


class LocalLatencyModel(MeasuringLatencyModel):
    """A `MeasuringLatencyModel` on this machine: missing blocks are timed with LiteRT here.

    Args:
        table_path: the table file; created if missing. An existing file must carry
            this machine's fingerprint at ``threads`` (else `DeviceMismatchError`).
        signatures_of: genotype -> its blocks' signatures.
        make_model: signature -> the block alone as a `keras.Model` at its input shape.
        threads: LiteRT threads.
        quantization: the table's mode (``int8`` as shipped; ``fp16``/``fp32`` on request).
        measurer: flatbuffer -> `LatencyRecord`; default `measure_tflite` at ``threads``
            and ``clock``.
        convert: ``(model, quantization) -> bytes``; default the export converter.
        overhead: see `TableLatencyModel`.
        progress: show a progress bar while measuring missing blocks.
        clock: ``wall`` or ``thread_cpu`` (`mobileseg.litert_measure`); part of the fingerprint.
        conversions: see `MeasuringLatencyModel`.

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
                 overhead: Overhead | None = None, progress: bool = True, clock: str = "wall",
                 conversions: int = 3):
        table = LatencyTable.load_or_create(table_path, local_fingerprint(threads, clock=clock),
                                            quantization)
        super().__init__(table, signatures_of, make_model, measurer, convert, overhead, progress,
                         conversions)


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
                            quantization: str = "int8", progress: bool = True,
                            serial: str | None = None, adb: str = "adb",
                            clock: str = "wall", conversions: int = 3) -> LatencyModel:
    """Build the latency model a ``--latency`` flag names.

    Args:
        spec: ``table:FILE``, ``local`` / ``local:FILE`` or ``adb`` / ``adb:FILE``
            (``local`` and ``adb`` without a file use ``default_table``).
        signatures_of: genotype -> its blocks' signatures.
        make_model: signature -> block model; required by ``local`` and ``adb``.
        default_table: the table file of ``local`` / ``adb`` without a path (e.g.
            ``runs/NAME/latency_table.json``).
        threads, quantization, progress: for ``local`` and ``adb`` (see `LocalLatencyModel`).
        clock: for ``local``: ``wall`` or ``thread_cpu`` (see `mobileseg.litert_measure`).
        conversions: for ``local`` and ``adb``: see `MeasuringLatencyModel`.
        serial, adb: for ``adb``: the phone (None: the only one connected) and the adb
            executable; see `mobileseg.latency.adb_backend`.

    Raises:
        mobileseg.run.exit_codes.BadInput: a spec outside the grammar (`mobileseg.run.latency_backend`).
        ValueError: no table file for ``local`` / ``adb``, or no ``make_model``.
        FileNotFoundError / TableFormatError: a ``table:`` file that is absent or corrupt.
        mobileseg.android.errors.AdbError: ``adb`` and no usable phone.

    Example:
        >>> latency_model_from_spec("gpu-cloud", list)
        Traceback (most recent call last):
        ...
        mobileseg.run.exit_codes.BadInput: --latency_backend gpu-cloud: expected local[:FILE], adb[:FILE] or table:FILE
    """
    from mobileseg.run.latency_backend import parse_latency_backend

    backend = parse_latency_backend(spec)
    if not backend.measures:
        return TableLatencyModel(LatencyTable.load(backend.path), signatures_of)
    path = backend.path or default_table
    if not path:
        raise ValueError(f"latency backend {backend.kind!r} needs a table file: {backend.kind}:FILE, "
                         "or a default table")
    if make_model is None:
        raise ValueError(f"latency backend {backend.kind!r} needs make_model (signature -> block model)")
    if backend.kind == "local":
        return LocalLatencyModel(path, signatures_of, make_model, threads=threads,
                                 quantization=quantization, progress=progress, clock=clock,
                                 conversions=conversions)
    from mobileseg.latency.adb_backend import AdbMeasurer, connect

    measurer = AdbMeasurer(connect(serial, adb), threads=threads)
    table = LatencyTable.load_or_create(path, measurer.fingerprint, quantization)
    return MeasuringLatencyModel(table, signatures_of, make_model, measurer, progress=progress,
                                 conversions=conversions)
