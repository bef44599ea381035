"""Several models x thread counts on one or several phones in parallel: the report behind ``bench --adb``.

Each phone is one `mobileseg.android.device_benchmark.AndroidDevice` in its own thread; a phone runs
its models one after another (never two benchmarks at once on one phone).
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence
from pathlib import Path

from absl import logging

from mobileseg.android.adb_client import AdbClient
from mobileseg.android.device_benchmark import BENCHMARK_BINARY_ENV, DELEGATES, AndroidDevice
from mobileseg.android.device_profiles import android_bench_dir, load_profiles
from mobileseg.android.errors import AndroidBenchError, BenchmarkError


def _error_entry(err: BaseException) -> dict:
    return {"type": type(err).__name__, "message": str(err)}


def _run_device(device: AndroidDevice, models: Sequence[str], threads: Sequence[int],
                delegate: str, op_profile: bool, warmup_runs: int, num_runs: int,
                keep_going: bool) -> dict:
    """Benchmark every model x thread count on one phone; its entry of the report."""
    entry: dict = {"fingerprint": device.fingerprint, "records": [], "error": None}
    try:
        entry["fingerprint"] = device.prepare()
        total = len(models) * len(threads)
        done = 0
        for model in models:
            for count in threads:
                done += 1
                logging.info("[%s] %d/%d %s threads=%d delegate=%s", device.serial, done, total,
                             Path(model).name, count, delegate)
                try:
                    record = device.measure(model, count, delegate, op_profile, warmup_runs,
                                            num_runs)
                except BenchmarkError as err:
                    if not keep_going:
                        raise
                    logging.error("[%s] %s", device.serial, err)
                    record = {"model": os.fspath(model), "model_name": Path(model).name,
                              "serial": device.serial, "threads": int(count),
                              "delegate": delegate, "avg_ms": None, "error": _error_entry(err)}
                else:
                    logging.info("[%s] %s threads=%d: %.3f ms (std %s, %s runs)", device.serial,
                                 record["model_name"], count, record["avg_ms"],
                                 "-" if record["std_ms"] is None else f"{record['std_ms']:.3f}",
                                 record["runs"] or "?")
                entry["records"].append(record)
    except AndroidBenchError as err:
        entry["fingerprint"] = device.fingerprint
        entry["error"] = _error_entry(err)
        err.partial_entry = entry  # type: ignore[attr-defined]
        raise
    return entry


def benchmark_on_devices(models: list[str], serials: list[str] | None, threads: list[int],
                         delegate: str = "xnnpack", op_profile: bool = False,
                         warmup_runs: int = 5, num_runs: int = 50, adb: str = "adb", *,
                         benchmark_binary: str | None = None, keep_going: bool = False,
                         retries: int = 3, backoff_s: float = 1.0, max_temp_c: int = 45,
                         cool_timeout_s: int = 180, cool_poll_s: int = 5,
                         timeout_s: float = 900.0) -> dict:
    """Benchmark several models x thread counts on one or several phones, in parallel.

    Each phone runs its models one after another (never two benchmarks at once on one
    phone); the phones run at the same time, one thread each.

    Args:
        models: .tflite files on this machine.
        serials: the phones; None or [] means "the one connected phone".
        threads: thread counts to measure, e.g. [1, 4].
        delegate: ``xnnpack``, ``gpu``, ``nnapi`` or ``none``.
        op_profile: collect per-op profiles.
        warmup_runs, num_runs: ``benchmark_model`` runs.
        adb: the adb executable.
        benchmark_binary: a ``benchmark_model`` on this machine to push to each phone;
            None takes ``$MOBILESEG_BENCHMARK_MODEL`` if set, else uses
            ``/data/local/tmp/benchmark_model`` already on the phone.
        keep_going: record a failing model (or phone) as an ``error`` entry and carry on,
            instead of raising.
        retries, backoff_s: retry policy for transient adb failures.
        max_temp_c, cool_timeout_s, cool_poll_s: thermal wait before each run.
        timeout_s: time limit of one benchmark_model run.

    Returns:
        ``{"devices": [{"fingerprint": {...}, "records": [record, ...], "error": None}, ...],
        "settings": {...}}``, devices in the order of ``serials``; see
        `AndroidDevice.measure` for a record and `AndroidDevice.prepare` for a fingerprint.

    Raises:
        ValueError, FileNotFoundError: bad arguments or a missing model file.
        AdbError, BenchmarkError: the first phone's error, unless ``keep_going``; the report
            of what was measured is attached to it as ``partial_result``.

    Example:
        >>> benchmark_on_devices(["m.tflite"], None, [4], delegate="cuda")
        Traceback (most recent call last):
        ...
        ValueError: delegate must be one of xnnpack, gpu, nnapi, none, got 'cuda'
    """
    if delegate not in DELEGATES:
        raise ValueError(f"delegate must be one of {', '.join(DELEGATES)}, got {delegate!r}")
    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1:
        raise ValueError(f"threads must be a non-empty list of counts >= 1, got {threads}")
    if not models:
        raise ValueError("no model to benchmark")
    for model in models:
        if not Path(model).is_file():
            raise FileNotFoundError(f"model file {model} does not exist")
    if benchmark_binary is None:
        benchmark_binary = os.environ.get(BENCHMARK_BINARY_ENV) or None
    if benchmark_binary is not None and not Path(benchmark_binary).is_file():
        raise FileNotFoundError(f"benchmark_model binary {benchmark_binary} does not exist")

    client = AdbClient(adb, retries=retries, backoff_s=backoff_s)
    chosen = client.select_devices(serials)
    profiles = load_profiles(android_bench_dir() / "devices.yaml")
    devices = [AndroidDevice(client, serial, binary_local=benchmark_binary,
                             max_temp_c=max_temp_c, cool_timeout_s=cool_timeout_s,
                             cool_poll_s=cool_poll_s, timeout_s=timeout_s, profiles=profiles)
               for serial in chosen]
    settings = {"threads": threads, "delegate": delegate, "op_profile": bool(op_profile),
                "warmup_runs": int(warmup_runs), "num_runs": int(num_runs),
                "models": [os.fspath(m) for m in models]}
    entries: list[dict] = []
    errors: list[AndroidBenchError] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = [pool.submit(_run_device, device, models, threads, delegate, op_profile,
                               warmup_runs, num_runs, keep_going) for device in devices]
        for device, future in zip(devices, futures):
            try:
                entries.append(future.result())
            except AndroidBenchError as err:
                logging.error("[%s] %s", device.serial, err)
                entries.append(getattr(err, "partial_entry"))
                errors.append(err)
    result = {"devices": entries, "settings": settings}
    if errors and not keep_going:
        first = errors[0]
        first.partial_result = result  # type: ignore[attr-defined]
        raise first
    return result
