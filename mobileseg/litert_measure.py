"""Time a TFLite model in LiteRT (``ai_edge_litert``) on this CPU, with its delegate report.

What one measurement does:

1. load the flatbuffer (a path or bytes) and check it is a TFLite file;
2. create the interpreter at the requested thread count (XNNPACK is LiteRT's
   default CPU delegate) and allocate tensors: ``init_ms``;
3. fill every input with seeded random values in the tensor's own dtype (int8
   for a full-integer model) and run the warm-up invokes; the growth of the peak
   resident memory over steps 2-3 is ``peak_mb`` (Linux ``/proc``; else ``None``);
4. time ``invoke()`` in rounds until the median of all runs has moved by less than
   ``stable_rel`` in each of the last two rounds (at least ``min_runs``, at most
   ``max_runs`` runs, so it always finishes);
5. read the delegate report from the execution plan: each ``DELEGATE`` node
   LiteRT added is one XNNPACK partition; the model's own nodes that no partition
   replaced run on the built-in kernels and are listed in ``fallback_ops``.

Loading, checking and inspecting a model (steps 1, 2 and 5, and the inputs of step 3) are
`mobileseg.litert_interpreter`'s; this module times it.

Several models are timed *interleaved*, a round of each in turn, so machine
noise (a busy neighbour, frequency changes) hits them all alike.

Each invoke is timed by a **clock**: ``wall`` (default, ``time.perf_counter_ns``) is the
latency a user sees; ``thread_cpu`` (``time.thread_time_ns``) is the CPU time of the
calling thread, which with ONE LiteRT thread (the invoke runs on the caller, XNNPACK
has no worker threads) is the latency the model would have on an idle core: time the
scheduler gave to other processes is not counted. On a shared machine (measured here,
load ~7 on 2 cores) a 9 ms network took 25-42 ms of wall time but 8.6 ms +-0.5 % of
thread CPU time; a phone's ``benchmark_model`` only has the wall clock.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import os
import time
from collections.abc import Sequence

import numpy as np

from mobileseg.litert_interpreter import delegate_report, load_interpreter, random_inputs, read_flatbuffer
# new_interpreter: export.py (being split on another branch) imports it from here
from mobileseg.litert_interpreter import new_interpreter  # noqa: F401

DELEGATES = ("xnnpack", "none")
CLOCKS = {"wall": time.perf_counter_ns, "thread_cpu": time.thread_time_ns}
STABLE_ROUNDS = 2  # consecutive rounds whose median moved by < stable_rel before a model stops

_RECORD_FIELDS = ("model", "threads", "delegate", "avg_ms", "median_ms", "min_ms", "p90_ms",
                  "std_ms", "init_ms", "peak_mb", "runs", "xnnpack_partitions", "fallback_ops")


@dataclasses.dataclass
class LatencyRecord:
    """One model's timing on one device; the same keys as the Android harness's records.

    Args:
        model: the file measured (or a name given for in-memory bytes).
        threads: LiteRT threads.
        delegate: ``xnnpack`` or ``none`` here; the Android harness adds ``gpu``/``nnapi``.
        avg_ms, median_ms, min_ms, p90_ms, std_ms: statistics of the timed invokes.
        init_ms: interpreter creation (delegate included) and tensor allocation.
        peak_mb: growth of the peak resident memory during init and warm-up, or None.
        runs: timed invokes.
        xnnpack_partitions: ``DELEGATE`` nodes in the execution plan.
        fallback_ops: the model's nodes left to the built-in kernels, in execution order.

    Example:
        >>> record = LatencyRecord("m.tflite", 1, "xnnpack", 1.1, 1.0, 0.9, 1.3, 0.1, 5.0,
        ...                        None, 50, 1, [])
        >>> LatencyRecord.from_dict(record.to_dict()) == record
        True
    """

    model: str
    threads: int
    delegate: str
    avg_ms: float
    median_ms: float
    min_ms: float
    p90_ms: float
    std_ms: float
    init_ms: float
    peak_mb: float | None
    runs: int
    xnnpack_partitions: int
    fallback_ops: list[str]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict with exactly the record's keys."""
        return {name: (list(value) if name == "fallback_ops" else value)
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> LatencyRecord:
        """Rebuild a record from `to_dict` output; unknown or missing keys are named in the error."""
        unknown = sorted(set(data) - set(_RECORD_FIELDS))
        missing = [name for name in _RECORD_FIELDS if name not in data]
        if unknown or missing:
            raise ValueError(f"latency record: unknown keys {unknown}, missing keys {missing}")
        return cls(**{name: data[name] for name in _RECORD_FIELDS})


def _check_positive_int(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``5 > /proc/self/clear_refs``).

    Memory freed by earlier interpreters is first handed back to the system
    (glibc ``malloc_trim``), else a new model would reuse it without growing the RSS.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class _Timed:
    """One model being measured: its interpreter, samples and stopping state."""

    def __init__(self, model, name: str | None, threads: int, delegate: str, warmup: int, seed: int,
                 clock: str = "wall"):
        flatbuffer, default_name = read_flatbuffer(model)
        self.name = name or default_name
        self.threads = threads
        self.delegate = delegate
        self.clock = CLOCKS[clock]
        can_track = _reset_peak_rss()
        rss_before = _proc_status_kb("VmRSS") if can_track else None
        start = time.perf_counter()
        self.interpreter = load_interpreter(flatbuffer, self.name, threads, delegate)
        self.init_ms = (time.perf_counter() - start) * 1e3
        for detail, value in zip(self.interpreter.get_input_details(),
                                 random_inputs(self.interpreter, seed), strict=True):
            self.interpreter.set_tensor(detail["index"], value)
        for _ in range(warmup):
            self.interpreter.invoke()
        peak = _proc_status_kb("VmHWM") if can_track else None
        self.peak_mb = (round(max(0, peak - rss_before) / 1024.0, 3)
                        if peak is not None and rss_before is not None else None)
        self.partitions, self.fallback_ops = delegate_report(self.interpreter)
        self.samples: list[float] = []
        self.last_median: float | None = None
        self.steady_rounds = 0
        self.done = False

    def run_round(self, runs: int, rewarm: bool) -> None:
        invoke, clock = self.interpreter.invoke, self.clock
        if rewarm:  # another model ran in between: one untimed invoke refills the caches
            invoke()
        for _ in range(runs):
            start = clock()
            invoke()
            self.samples.append((clock() - start) / 1e6)

    def update(self, min_runs: int, max_runs: int, stable_rel: float) -> None:
        median = float(np.median(self.samples))
        steady = (self.last_median is not None
                  and abs(median - self.last_median) < stable_rel * self.last_median)
        self.steady_rounds = self.steady_rounds + 1 if steady else 0
        self.last_median = median
        if len(self.samples) >= max_runs or (len(self.samples) >= min_runs
                                             and self.steady_rounds >= STABLE_ROUNDS):
            self.done = True

    def record(self) -> LatencyRecord:
        samples = np.asarray(self.samples)
        return LatencyRecord(
            model=self.name, threads=self.threads, delegate=self.delegate,
            avg_ms=round(float(samples.mean()), 4),
            median_ms=round(float(np.median(samples)), 4),
            min_ms=round(float(samples.min()), 4),
            p90_ms=round(float(np.percentile(samples, 90)), 4),
            std_ms=round(float(samples.std(ddof=1)) if samples.size > 1 else 0.0, 4),
            init_ms=round(self.init_ms, 3), peak_mb=self.peak_mb, runs=int(samples.size),
            xnnpack_partitions=self.partitions, fallback_ops=list(self.fallback_ops))


def measure_interleaved(models: Sequence[str | os.PathLike | bytes], threads: int = 1, *,
                        names: Sequence[str | None] | None = None, delegate: str = "xnnpack",
                        warmup: int = 5, min_runs: int = 20, max_runs: int = 500,
                        round_runs: int = 10, stable_rel: float = 0.02,
                        max_seconds: float | None = None, seed: int = 0,
                        clock: str = "wall") -> list[LatencyRecord]:
    """Time several TFLite models alternately, a round of each in turn, until each is stable.

    Args:
        models: ``.tflite`` paths or flatbuffer bytes.
        threads: LiteRT threads for every model.
        names: the ``model`` field of each record (default: the path, or ``<bytes>``).
        delegate: ``xnnpack`` (LiteRT's default) or ``none`` (built-in kernels only).
        warmup: untimed invokes before timing.
        min_runs: timed invokes before a model may stop.
        max_runs: timed invokes after which a model stops even if not stable.
        round_runs: timed invokes per round; a model stops once the median of all
            its runs moved by less than ``stable_rel`` (relative) in each of the last
            `STABLE_ROUNDS` rounds.
        stable_rel: the relative median change that counts as stable.
        max_seconds: stop every model after the round in which this much time passed.
        seed: seeds the random inputs.
        clock: ``wall`` (latency as seen) or ``thread_cpu`` (CPU time of the invoking
            thread: the idle-core latency on a shared machine; needs ``threads=1``). See
            the module doc.

    Returns:
        One `LatencyRecord` per model, in the order given.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that is not TFLite (named), or a bad argument.

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> fast, slow = tiny_tflite("conv", channels=4), tiny_tflite("conv", channels=32)
        >>> a, b = measure_interleaved([fast, slow], names=["fast", "slow"], max_runs=40)
        >>> a.model, b.model, a.min_ms <= a.median_ms <= a.p90_ms
        ('fast', 'slow', True)
    """
    threads = _check_positive_int(threads, "threads")
    warmup = _check_positive_int(warmup, "warmup", minimum=0)
    min_runs = _check_positive_int(min_runs, "min_runs")
    max_runs = _check_positive_int(max_runs, "max_runs")
    round_runs = _check_positive_int(round_runs, "round_runs")
    if max_runs < min_runs:
        raise ValueError(f"max_runs ({max_runs}) must be >= min_runs ({min_runs})")
    if not 0 <= stable_rel < 1:
        raise ValueError(f"stable_rel must be in [0, 1), got {stable_rel!r}")
    if delegate not in DELEGATES:
        raise ValueError(f"delegate {delegate!r} cannot run locally; expected one of "
                         f"{', '.join(DELEGATES)} (gpu/nnapi need a phone: mobileseg.bench --adb)")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "thread_cpu" and threads != 1:
        raise ValueError(f"the thread_cpu clock times the calling thread only, so it needs "
                         f"threads=1, got {threads}")
    if not models:
        raise ValueError("no models to measure")
    names = list(names) if names is not None else [None] * len(models)
    if len(names) != len(models):
        raise ValueError(f"{len(names)} names for {len(models)} models")

    # The first interpreter of a process pays one-off costs (runtime and delegate set-up,
    # thread pool, ~9 ms and ~20 MB here) that belong to no model: pay them untimed.
    _Timed(models[0], names[0], threads, delegate, warmup=1, seed=seed)
    timed = [_Timed(model, name, threads, delegate, warmup, seed, clock)
             for model, name in zip(models, names, strict=True)]
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while not all(item.done for item in timed):
            for item in timed:
                if not item.done:
                    item.run_round(min(round_runs, max_runs - len(item.samples)),
                                   rewarm=len(timed) > 1)
                    item.update(min_runs, max_runs, stable_rel)
            if deadline is not None and time.perf_counter() >= deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return [item.record() for item in timed]


def measure_tflite(model: str | os.PathLike | bytes, threads: int = 1, *, name: str | None = None,
                   delegate: str = "xnnpack", warmup: int = 5, min_runs: int = 20,
                   max_runs: int = 500, round_runs: int = 10, stable_rel: float = 0.02,
                   max_seconds: float | None = None, seed: int = 0,
                   clock: str = "wall") -> LatencyRecord:
    """Time one TFLite model in LiteRT; see `measure_interleaved` for every argument.

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> record = measure_tflite(tiny_tflite("conv"), threads=1, max_runs=30)
        >>> record.xnnpack_partitions, record.fallback_ops, 20 <= record.runs <= 30
        (1, [], True)
    """
    return measure_interleaved([model], threads, names=[name], delegate=delegate, warmup=warmup,
                               min_runs=min_runs, max_runs=max_runs, round_runs=round_runs,
                               stable_rel=stable_rel, max_seconds=max_seconds, seed=seed,
                               clock=clock)[0]
