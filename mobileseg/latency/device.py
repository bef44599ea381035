"""The fingerprint of the machine and runtime a latency was measured on.

A latency table holds one fingerprint: entries measured on another CPU, another
LiteRT version, another thread count or another converter (TensorFlow) version
are different measurements. `fingerprint_mismatch` lists the fields that decide
that; the rest (Python version, host name) is recorded for the reader only.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform

from mobileseg.provenance import cpu_id, cpu_model

# Fields that change what a measurement means: two fingerprints that differ in
# one of them must not share a table that is still being filled.
MEASUREMENT_FIELDS = ("cpu", "cpu_id", "cores", "machine", "runtime", "runtime_version", "tensorflow",
                      "threads", "delegate", "clock")
# A fingerprint written before a field existed has that field's value implied,
IMPLIED = {"clock": "wall"}
# or, for these, unknown: not compared when either fingerprint lacks it. ``cpu_id`` tells apart two
# hosts whose model names agree (`mobileseg.provenance.cpu_id`); a table from before it keeps working.
UNKNOWN_BEFORE = ("cpu_id",)
# The same for a phone's fingerprint (`mobileseg.android.device_benchmark.AndroidDevice.prepare`,
# absent from this machine's): model, SoC, ABI, Android build and the cores benchmark_model
# is pinned to. Its serial is not among them, so another unit of the same phone may finish a table.
PHONE_FIELDS = ("kind", "model", "soc", "abi", "build", "big_core_mask")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def local_fingerprint(threads: int | None = 1, delegate: str = "xnnpack", clock: str = "wall") -> dict:
    """The fingerprint of this machine running LiteRT (``ai_edge_litert``).

    Args:
        threads: LiteRT threads the measurements use; ``None`` leaves the field out
            (for reports whose records carry their own thread count).
        delegate: ``xnnpack`` (LiteRT's default CPU delegate) or ``none``.
        clock: how invokes are timed, ``wall`` or ``thread_cpu`` (`mobileseg.litert_measure`).

    Returns:
        A JSON-serialisable dict: ``cpu``, ``cpu_id``, ``cores``, ``machine``, ``system``,
        ``runtime`` (``ai-edge-litert``), ``runtime_version``, ``tensorflow``
        (the converter), ``python``, ``delegate``, ``clock`` and ``threads``.

    Example:
        >>> fp = local_fingerprint(threads=2)
        >>> fp["threads"], fp["runtime"], fp["cores"] >= 1
        (2, 'ai-edge-litert', True)
    """
    fingerprint = {
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cores": os.cpu_count() or 1,
        "machine": platform.machine(),
        "system": platform.system(),
        "runtime": "ai-edge-litert",
        "runtime_version": _version("ai-edge-litert"),
        "tensorflow": _version("tensorflow"),
        "python": platform.python_version(),
        "delegate": delegate,
        "clock": clock,
    }
    if threads is not None:
        fingerprint["threads"] = int(threads)
    return fingerprint


def fingerprint_mismatch(expected: dict, actual: dict) -> list[str]:
    """The measurement (and phone) fields on which two fingerprints differ, as ``name: a != b`` lines.

    Args:
        expected: e.g. a table's fingerprint.
        actual: e.g. `local_fingerprint()`.

    Example:
        >>> a = local_fingerprint(threads=1)
        >>> fingerprint_mismatch(a, dict(a, threads=4, python="0"))
        ['threads: 1 != 4']
        >>> fingerprint_mismatch({k: v for k, v in a.items() if k != "cpu_id"}, dict(a, cpu_id="other"))
        []
    """
    def value(fingerprint: dict, name: str):
        return fingerprint.get(name, IMPLIED.get(name))

    return [f"{name}: {value(expected, name)!r} != {value(actual, name)!r}"
            for name in MEASUREMENT_FIELDS + PHONE_FIELDS if value(expected, name) != value(actual, name)
            and not (name in UNKNOWN_BEFORE and (name not in expected or name not in actual))]
