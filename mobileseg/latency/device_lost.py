"""A phone lost in the middle of a latency-table build: the exit code and the message of every CLI.

`LatencyTable.build` saves the table after every block, so when the phone goes
(`mobileseg.android.errors.DeviceLost`) every entry measured before is kept, and running
the same command again measures only the blocks left. ``python -m mobileseg.latency build``
and ``python -m mobileseg.search`` both stop with `EXIT_DEVICE_LOST` and `build_interrupted`.

Example:
    >>> from mobileseg.latency.device import local_fingerprint
    >>> from mobileseg.latency.signature import BlockSignature
    >>> from mobileseg.latency.table import LatencyTable
    >>> table = LatencyTable(local_fingerprint(), path="runs/x/latency_table.json")
    >>> blocks = [BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)]
    >>> print(build_interrupted("device R58M disappeared", table, blocks))
    error: device R58M disappeared
    0 entries are saved in runs/x/latency_table.json; 1 blocks are left. Reconnect the phone and run the same command again: it measures only those.
"""

from __future__ import annotations

from collections.abc import Iterable

from mobileseg.run.exit_codes import EXIT_DEVICE_LOST


def adb_exit_code(error) -> int:
    """The exit code every command gives for an adb or phone failure (`mobileseg.android.errors`).

    2 when the command cannot be run as given (no adb, several phones and no ``--serial``),
    `EXIT_DEVICE_LOST` (3) when the phone could not be reached or was lost (connect it and
    run again), 1 for any other failure on the phone (a benchmark that failed).

    Example:
        >>> from mobileseg.android.errors import AdbNotFoundError, BenchmarkError, DeviceLost
        >>> errors = AdbNotFoundError("adb"), DeviceLost("R58M", "pushing"), BenchmarkError("no result")
        >>> [adb_exit_code(error) for error in errors]
        [2, 3, 1]
    """
    from mobileseg.android.errors import AdbError, AdbNotFoundError, MultipleDevicesError

    if isinstance(error, (AdbNotFoundError, MultipleDevicesError)):
        return 2
    return EXIT_DEVICE_LOST if isinstance(error, AdbError) else 1


def build_interrupted(error, table, signatures: Iterable, conversions: int = 1) -> str:
    """The message for a build of ``signatures`` into ``table`` cut short by ``error``.

    Args:
        error: the `DeviceLost` (its text names the phone).
        table: the `LatencyTable` being built (already saved).
        signatures: every block the build was asked for.
        conversions: as given to `LatencyTable.build` (blocks short of them count as left).
    """
    left = len(table.to_measure(signatures, conversions))
    return (f"error: {error}\n{len(table)} entries are saved in {table.path}; {left} blocks are left. "
            "Reconnect the phone and run the same command again: it measures only those.")
