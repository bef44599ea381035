"""The ``adb`` latency backend: latency-table blocks timed on an Android phone.

Each block is converted here exactly as for the local backend, written to a temporary
``.tflite`` file, pushed to the phone and timed with ``benchmark_model`` through the
Android harness (`mobileseg.android.device_benchmark.AndroidDevice`, one prepared phone
for the whole table, models deleted from the phone after their run). `entry_from_android`
is the ONE place that turns the harness's record into a table record: a phone reports
``p95_ms`` where LiteRT here reports ``p90_ms``, its XNNPACK partitions only as the number
of delegate kernels it prints, and no fallback ops.

The table's fingerprint is the phone's (model, SoC, ABI, Android build, big-core mask;
see `mobileseg.latency.device.PHONE_FIELDS`) plus threads, delegate and the converter's
TensorFlow version. `LatencyTable.build` saves after every block, so when the phone is
unplugged (`mobileseg.android.errors.DeviceLost`) every block measured before stays in the
file and the next build measures only the rest.

Example:
    >>> entry_from_android({"avg_ms": 2.4, "median_ms": 2.3, "p95_ms": 2.9, "std_ms": 0.2,
    ...                     "min_ms": 2.1, "runs": 50, "num_runs": 50,
    ...                     "delegation": [{"delegate": "XNNPACK", "coverage": "partial",
    ...                                     "kernels": 3}]})["xnnpack_partitions"]
    3
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mobileseg.latency.device import local_fingerprint


def entry_from_android(record: Mapping) -> dict:
    """A table record (the keys `TableEntry.from_record` reads) from an `AndroidDevice.measure` record.

    ``median_ms`` is the tool's median, or its mean when its output format has no
    percentiles (builds before 2024); ``p90_ms`` is None and ``p95_ms`` the tool's;
    ``xnnpack_partitions`` is the number of XNNPACK delegate kernels it printed, None when
    it printed none; ``fallback_ops`` is None (benchmark_model does not list them).

    Raises:
        ValueError: a record with neither a median nor a mean.

    Example:
        >>> entry = entry_from_android({"avg_ms": 4.0, "median_ms": None, "p95_ms": None,
        ...                             "std_ms": None, "min_ms": None, "runs": None,
        ...                             "num_runs": 50, "delegation": []})
        >>> entry["median_ms"], entry["runs"], entry["xnnpack_partitions"], entry["fallback_ops"]
        (4.0, 50, None, None)
    """
    median = record.get("median_ms")
    if median is None:
        median = record.get("avg_ms")
    if median is None:
        raise ValueError(f"benchmark_model gave no latency for {record.get('model_name', 'a model')}")
    kernels = [entry.get("kernels") for entry in record.get("delegation") or ()
               if "xnnpack" in str(entry.get("delegate", "")).lower()]
    partitions = kernels[0] if kernels and kernels[0] is not None else None
    runs = record.get("runs") if record.get("runs") is not None else record.get("num_runs")
    return {"median_ms": float(median), "p90_ms": None, "p95_ms": record.get("p95_ms"),
            "std_ms": record.get("std_ms"), "min_ms": record.get("min_ms"),
            "runs": int(runs or 0), "xnnpack_partitions": partitions, "fallback_ops": None}


def phone_fingerprint(device_fingerprint: Mapping, threads: int, delegate: str = "xnnpack") -> dict:
    """A latency table's fingerprint for blocks timed on this phone with these settings.

    Example:
        >>> fp = phone_fingerprint({"id": "S1", "kind": "android", "model": "Pixel 7",
        ...                         "runtime": "benchmark_model"}, threads=4)
        >>> fp["model"], fp["threads"], fp["delegate"], fp["runtime"]
        ('Pixel 7', 4, 'xnnpack', 'benchmark_model')
    """
    return {**dict(device_fingerprint), "threads": int(threads), "delegate": delegate,
            "runtime": "benchmark_model",
            "tensorflow": local_fingerprint(None)["tensorflow"]}  # the converter, on this machine


class AdbMeasurer:
    """flatbuffer bytes -> table record, timed on one prepared phone (the ``measurer`` of a build).

    Args:
        device: an `AndroidDevice` (e.g. from `connect`).
        threads: ``benchmark_model --num_threads``.
        delegate: ``xnnpack`` (the default CPU path), ``gpu``, ``nnapi`` or ``none``.
        warmup_runs, num_runs: ``benchmark_model`` runs per block.
        workdir: where the temporary ``.tflite`` files are written (default: a fresh temp folder).
    """

    def __init__(self, device, threads: int = 1, delegate: str = "xnnpack", warmup_runs: int = 5,
                 num_runs: int = 50, workdir: str | os.PathLike | None = None):
        self.device = device
        self.threads = int(threads)
        self.delegate = delegate
        self.warmup_runs = int(warmup_runs)
        self.num_runs = int(num_runs)
        self.workdir = Path(workdir) if workdir is not None else Path(
            tempfile.mkdtemp(prefix="mobileseg_adb_blocks_"))
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def fingerprint(self) -> dict:
        """The table fingerprint of this phone and setting (`phone_fingerprint`)."""
        return phone_fingerprint(self.device.prepare(), self.threads, self.delegate)

    def __call__(self, flatbuffer: bytes, name: str = "block") -> dict:
        """Time one model on the phone.

        Raises:
            mobileseg.android.errors.DeviceLost: the phone disappeared.
            mobileseg.android.errors.AndroidBenchError: any other harness failure.
        """
        path = self.workdir / f"{name}.tflite"
        path.write_bytes(flatbuffer)
        try:
            record = self.device.measure(path, self.threads, self.delegate,
                                         warmup_runs=self.warmup_runs, num_runs=self.num_runs)
        finally:
            path.unlink(missing_ok=True)
        return entry_from_android(record)


def connect(serial: str | None = None, adb: str = "adb", **kwargs):
    """One prepared phone for a table build (blocks are removed from it after their run).

    Args:
        serial: the phone, or None for the only one connected.
        adb: the adb executable.
        **kwargs: other `AndroidDevice` arguments (``binary_local``, ``max_temp_c``, ...).

    Raises:
        mobileseg.android.errors.AdbError: no phone, several phones, unauthorized, ...
    """
    from mobileseg.android.device_benchmark import BENCHMARK_BINARY_ENV, AndroidDevice

    kwargs.setdefault("keep_models", False)
    kwargs.setdefault("binary_local", os.environ.get(BENCHMARK_BINARY_ENV) or None)
    return AndroidDevice.connect(serial, adb=adb, **kwargs)
