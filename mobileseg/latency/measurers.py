"""A measurer for a latency backend, and a saved table opened with a measurer of its own device.

The latency commands time blocks and networks on this CPU (``local``: LiteRT through
`mobileseg.litert_measure.measure_tflite`) or on a phone (``adb``:
`mobileseg.latency.adb_backend.AdbMeasurer`). `device_measurer` makes either one with its
device fingerprint; `open_measured_table` loads a table and refuses a setting (quantization,
threads, clock) or a device other than the ones its blocks were measured with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from mobileseg.latency.cache import open_default
from mobileseg.latency.device import fingerprint_mismatch, local_fingerprint
from mobileseg.latency.table import DeviceMismatchError, LatencyTable
from mobileseg.litert_measure import measure_tflite


def device_measurer(backend: str, threads: int, clock: str, *, serial: str | None, adb: str,
                    warmup: int, num_runs: int, min_runs: int, max_runs: int,
                    max_seconds: float) -> tuple:
    """(measurer, fingerprint) of ``backend`` (``local`` or ``adb``) at ``threads`` and ``clock``.

    Args:
        backend, threads, clock: where and how to time (``clock`` ``wall`` or ``thread_cpu``).
        serial, adb: the phone and the adb binary (``adb`` only).
        warmup: warm-up runs; num_runs: ``benchmark_model`` runs (``adb``); min_runs,
            max_runs, max_seconds: LiteRT's adaptive run count (``local``).

    Raises:
        ValueError: a clock the backend cannot time with (the message names the flag).
    """
    if backend == "adb":
        if clock != "wall":
            raise ValueError("--backend adb times with benchmark_model's wall clock; drop --clock")
        from mobileseg.latency import adb_backend

        measurer = adb_backend.AdbMeasurer(adb_backend.connect(serial, adb), threads,
                                           warmup_runs=warmup, num_runs=num_runs)
        return measurer, measurer.fingerprint
    if clock == "thread_cpu" and threads != 1:
        raise ValueError(f"--clock thread_cpu times one thread: it needs --threads 1, got {threads}")
    measurer = functools.partial(measure_tflite, threads=threads, warmup=warmup, min_runs=min_runs,
                                 max_runs=max_runs, max_seconds=max_seconds, clock=clock)
    return measurer, local_fingerprint(threads, clock=clock)


def open_measured_table(path: str, fingerprint_of: Callable, *, quantization: str, threads: int,
                        threads_given: bool, clock_given: str | None, backend: str) -> tuple:
    """The table at ``path`` (with the persistent cache) and a measurer for its device.

    Args:
        path: the table file.
        fingerprint_of: ``(threads, clock) -> (measurer, fingerprint)``, e.g. `device_measurer`
            bound to a backend.
        quantization: what the networks are; it must be the table's.
        threads: the threads when the table does not say; ``threads_given``: whether the user
            chose them (they must then be the table's).
        clock_given: the clock the user chose (it must be the table's), or None.
        backend: the backend's name, for the messages.

    Returns:
        (table, measurer, fingerprint).

    Raises:
        ValueError: another quantization, thread count or clock than the table's.
        DeviceMismatchError: the backend is another device or setting than the table's.
    """
    table = LatencyTable.load(path)
    table.cache = open_default()
    if table.quantization != quantization:
        raise ValueError(f"latency table {path} holds {table.quantization} entries; pass "
                         f"--quantization {table.quantization}")
    table_threads = int(table.fingerprint.get("threads", threads))
    if threads_given and threads != table_threads:
        raise ValueError(f"latency table {path} was measured with {table_threads} thread(s), not "
                         f"--threads {threads}")
    clock = table.fingerprint.get("clock", "wall")
    if clock_given is not None and clock_given != clock:
        raise ValueError(f"latency table {path} was timed with the {clock} clock, not --clock "
                         f"{clock_given}")
    measurer, fingerprint = fingerprint_of(table_threads, clock)
    mismatch = fingerprint_mismatch(table.fingerprint, fingerprint)
    if mismatch:
        raise DeviceMismatchError(
            f"latency table {path} was measured on another device or setting than --backend "
            f"{backend} ({'; '.join(mismatch)}): networks must be timed where the blocks were")
    return table, measurer, fingerprint
