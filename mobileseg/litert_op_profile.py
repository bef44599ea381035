"""Per-op times of a TFLite model in LiteRT on this CPU, from LiteRT's own profiler.

The Python ``Interpreter`` of ``ai_edge_litert`` 2.3.0 has no profiler, and XNNPACK runs a whole
partition as one ``DELEGATE`` node, so timing TFLite nodes from Python sees one block. LiteRT's C
API has what ``benchmark_model --enable_op_profiling`` prints: a ``CompiledModel`` made with
runtime option ``enable_profiling = true`` owns a profiler that records, for every invoke, one
event per XNNPACK *operator* (XNNPACK's own per-operator timing, tag e.g. ``Convolution (NHWC,
QC8) IGEMM``) and one per node left to LiteRT's built-in kernels (tag: the TFLite op, e.g.
``ARG_MAX``). This module calls that API from ``libLiteRt.so`` (shipped in the ``ai_edge_litert``
wheel) through ``ctypes``: CPU accelerator (XNNPACK), ONE thread, inputs filled with
`mobileseg.litert_interpreter.random_inputs`. The signatures and the event layout are those of
``litert/c/`` at the pinned ai-edge-litert 2.3.0 (``requirements.txt``); the tests run each call.

What a time means: each event is XNNPACK's (or LiteRT's) wall-clock time of one call, in whole
microseconds. On a shared machine many calls are interrupted by the scheduler and come out long
(measured here, 2026-12, load 12-17 on 2 cores at ``nice 10``: a 7 ms invoke took 72 ms of wall
time; a 3.4 ms convolution was interrupted in more than 75 % of its runs, so its median was 36 ms).
An interruption adds milliseconds, so a node's runs form a clean cluster near its fastest run and
a tail far above it: each node's time is the mean of its **clean runs**, those within `CLEAN`
(25 %, at least 50 us) of its fastest run, whatever share of its runs was interrupted, as long
as one was not. Each profiled invoke also starts right after the thread gave up the CPU
(``sched_yield``), on a fresh time slice, so fewer of its ops are interrupted. The sum of the op
times is compared with the file's thread-CPU time (`mobileseg.litert_measure`) by the callers
(`mobileseg.deploy.op_profile`): that is the error of the profile. Measured here it is 0.79-1.01
for the fp32 and int8 files of 10 reference networks (``benchmarks/results/int8_profile.json``): the
ops' clean times leave out LiteRT's work between ops (0.14-0.28 ms per invoke, from the profiler's
``Invoke`` events) and the cache refills that follow
each interruption, which the thread-CPU time of a loaded machine includes.

Several models are profiled *interleaved*, a round of each in turn, as `mobileseg.litert_measure`
times them. Rows are `mobileseg.android.op_profile`'s: one `OpProfileRow` per node, one
`OpTypeRow` per op type, the same as a phone's ``benchmark_model`` tables.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from mobileseg.android.op_profile import OpProfileRow, OpTypeRow
from mobileseg.litert_interpreter import builtin_interpreter, random_inputs, read_flatbuffer

OPERATOR_EVENT = 1 << 1  # a node run by LiteRT's built-in kernels (tflite::Profiler::EventType)
DELEGATE_OPERATOR_EVENT = 1 << 3  # an operator inside a delegate (XNNPACK), profiled by the delegate
CPU_ACCELERATOR = 1  # kLiteRtHwAcceleratorCpu
LOCK_WRITE = 1  # kLiteRtTensorBufferLockModeWrite
RUNTIME_OPTIONS = (b"runtime_options_string", b"enable_profiling = true\n")
CPU_OPTIONS = (b"xnnpack", b"num_threads = 1\n")
_TENSOR_TYPE_BYTES = 1024  # room for a LiteRtRankedTensorType, which this module only passes on
CLEAN = (0.25, 50.0)  # a node's clean runs: within 25 % (at least 50 us) of its fastest (module doc)


class _MemoryUsage(ctypes.Structure):
    _fields_ = [("total_allocated_bytes", ctypes.c_size_t), ("in_use_allocated_bytes", ctypes.c_size_t),
                ("private_footprint_bytes", ctypes.c_size_t)]


class _Event(ctypes.Structure):
    """``ProfiledEventData`` of ``litert/c/litert_profiler_event.h``."""

    _fields_ = [("tag", ctypes.c_char_p), ("event_type", ctypes.c_int), ("start_timestamp_us", ctypes.c_uint64),
                ("elapsed_time_us", ctypes.c_uint64), ("begin_mem_usage", _MemoryUsage),
                ("end_mem_usage", _MemoryUsage), ("event_metadata1", ctypes.c_uint64),
                ("event_metadata2", ctypes.c_uint64), ("event_source", ctypes.c_int)]


_P, _SIZE, _OUT = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {  # name: argument types; every one returns a LiteRtStatus (0: ok) unless listed in _VOID
    "LiteRtCreateEnvironment": [ctypes.c_int, _P, _OUT],
    "LiteRtCreateModelFromBuffer": [_P, _P, _SIZE, _OUT],
    "LiteRtCreateOptions": [_OUT],
    "LiteRtSetOptionsHardwareAccelerators": [_P, ctypes.c_int],
    "LiteRtCreateOpaqueOptions": [ctypes.c_char_p, _P, _P, _OUT],
    "LiteRtAddOpaqueOptions": [_P, _P],
    "LiteRtCreateCompiledModel": [_P, _P, _P, _OUT],
    "LiteRtGetModelSignature": [_P, _SIZE, _OUT],
    "LiteRtGetNumSignatureInputs": [_P, ctypes.POINTER(_SIZE)],
    "LiteRtGetNumSignatureOutputs": [_P, ctypes.POINTER(_SIZE)],
    "LiteRtGetSignatureInputTensorByIndex": [_P, _SIZE, _OUT],
    "LiteRtGetSignatureOutputTensorByIndex": [_P, _SIZE, _OUT],
    "LiteRtGetRankedTensorType": [_P, _P],
    "LiteRtGetCompiledModelInputBufferRequirements": [_P, _SIZE, _SIZE, _OUT],
    "LiteRtGetCompiledModelOutputBufferRequirements": [_P, _SIZE, _SIZE, _OUT],
    "LiteRtCreateManagedTensorBufferFromRequirements": [_P, _P, _P, _OUT],
    "LiteRtGetTensorBufferPackedSize": [_P, ctypes.POINTER(_SIZE)],
    "LiteRtLockTensorBuffer": [_P, _OUT, ctypes.c_int],
    "LiteRtUnlockTensorBuffer": [_P],
    "LiteRtRunCompiledModel": [_P, _SIZE, _SIZE, _P, _SIZE, _P],
    "LiteRtCompiledModelGetProfiler": [_P, _OUT],
    "LiteRtStartProfiler": [_P],
    "LiteRtStopProfiler": [_P],
    "LiteRtResetProfiler": [_P],
    "LiteRtGetNumProfilerEvents": [_P, ctypes.POINTER(ctypes.c_int)],
    "LiteRtGetProfilerEvents": [_P, ctypes.c_int, ctypes.POINTER(_Event)],
    "LiteRtDestroyTensorBuffer": [_P],
    "LiteRtDestroyCompiledModel": [_P],
    "LiteRtDestroyOptions": [_P],
    "LiteRtDestroyModel": [_P],
    "LiteRtDestroyEnvironment": [_P],
}
_VOID = {name for name in _SIGNATURES if name.startswith("LiteRtDestroy")}


@functools.cache
def _library() -> ctypes.CDLL:
    """``libLiteRt.so`` of the installed ``ai_edge_litert``, its functions typed."""
    import ai_edge_litert

    path = os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so")
    library = ctypes.CDLL(path)
    for name, argtypes in _SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes = argtypes
        function.restype = None if name in _VOID else ctypes.c_int
    return library


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.strdup.restype, libc.strdup.argtypes = _P, [ctypes.c_char_p]
    return libc


def _call(name: str, *args, model: str = "") -> None:
    status = getattr(_library(), name)(*args)
    if status != 0:
        raise RuntimeError(f"{model}: LiteRT {name} failed (status {status})")


@dataclasses.dataclass(frozen=True)
class OpProfile:
    """Where one model's invoke time goes, node by node.

    Attributes:
        model: the file profiled (or the name given).
        runs: profiled invokes.
        nodes: one row per XNNPACK operator or built-in node in execution order; ``avg_ms`` is the
            mean of its clean runs (module doc), ``times_called`` 1.
        profiled_ms: median thread-CPU time of one profiled invoke (profiling included).

    Example:
        >>> profile = OpProfile("m", 10, (OpProfileRow("Add (ND)", "0", 0.25), OpProfileRow("Add (ND)", "1", 0.5),
        ...                               OpProfileRow("ARG_MAX", "2", 0.1)), 0.9)
        >>> profile.total_ms, [(row.op, row.count, row.ms_per_run) for row in profile.by_type()]
        (0.85, [('Add (ND)', 2, 0.75), ('ARG_MAX', 1, 0.1)])
    """

    model: str
    runs: int
    nodes: tuple[OpProfileRow, ...]
    profiled_ms: float

    @property
    def total_ms(self) -> float:
        """The nodes' times summed: the invoke as the profiler sees it."""
        return round(sum(node.ms_per_run for node in self.nodes), 4)

    def by_type(self) -> tuple[OpTypeRow, ...]:
        """The nodes summed by op type, the costliest first."""
        ms, count = defaultdict(float), defaultdict(int)
        for node in self.nodes:
            ms[node.op] += node.ms_per_run
            count[node.op] += 1
        order = sorted(ms, key=lambda op: -ms[op])
        return tuple(OpTypeRow(op, count[op], round(ms[op], 4), count[op]) for op in order)


def clean_runs_mean(samples_us: np.ndarray, clean: tuple[float, float] = CLEAN) -> np.ndarray:
    """The mean of each column's clean runs (runs in rows, microseconds): those within ``clean[0]`` (relative,
    at least ``clean[1]`` us) of the column's fastest run; a node's time without the runs the scheduler
    interrupted (module doc).

    Example:
        >>> samples = np.array([[100.0 + run % 3, 3400.0 + run] for run in range(20)])
        >>> samples[2:, 1] += 20000.0  # 90 % of the runs of the second node interrupted
        >>> clean_runs_mean(samples).tolist()
        [100.95, 3400.5]
    """
    samples = np.asarray(samples_us, dtype=np.float64)
    fastest = samples.min(axis=0)
    kept = samples <= fastest + np.maximum(clean[0] * fastest, clean[1])
    return (samples * kept).sum(axis=0) / kept.sum(axis=0)


def _fresh_time_slice() -> None:
    """Give up the CPU, so that the next invoke starts a fresh scheduler time slice (module doc)."""
    if hasattr(os, "sched_yield"):
        os.sched_yield()


class _Profiled:
    """One model compiled for the CPU with profiling on: its buffers, profiler and samples."""

    def __init__(self, environment, model, name: str | None, seed: int):
        flatbuffer, default_name = read_flatbuffer(model)
        self.name = name or default_name
        self._owned: list[tuple[str, ctypes.c_void_p]] = []  # destroyed in reverse order
        self._data = ctypes.create_string_buffer(flatbuffer, len(flatbuffer))  # must outlive the model
        self._model = self._make("LiteRtCreateModelFromBuffer", environment, self._data, len(flatbuffer),
                                 destroy="LiteRtDestroyModel")
        options = self._make("LiteRtCreateOptions", destroy="LiteRtDestroyOptions")
        _call("LiteRtSetOptionsHardwareAccelerators", options, CPU_ACCELERATOR, model=self.name)
        for identifier, payload in (RUNTIME_OPTIONS, CPU_OPTIONS):  # options owns them (and frees the payload)
            opaque = ctypes.c_void_p()
            _call("LiteRtCreateOpaqueOptions", identifier, _libc().strdup(payload),
                  ctypes.cast(_libc().free, ctypes.c_void_p), ctypes.byref(opaque), model=self.name)
            _call("LiteRtAddOpaqueOptions", options, opaque, model=self.name)
        from mobileseg.console import quietly

        self._compiled = quietly(self._make, "LiteRtCreateCompiledModel", environment, self._model, options,
                                 destroy="LiteRtDestroyCompiledModel")
        self._profiler = self._make("LiteRtCompiledModelGetProfiler", self._compiled)
        signature = self._make("LiteRtGetModelSignature", self._model, 0)
        self._inputs = self._buffers(environment, signature, "Input")
        self._outputs = self._buffers(environment, signature, "Output")
        self._fill_inputs(flatbuffer, seed)
        self.samples: list[np.ndarray] = []
        self.tags: list[str] | None = None
        self.kinds: list[int] | None = None
        self.cpu_ms: list[float] = []

    def _make(self, function: str, *args, destroy: str | None = None) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        _call(function, *args, ctypes.byref(handle), model=self.name)
        if destroy:
            self._owned.append((destroy, handle))
        return handle

    def _buffers(self, environment, signature, side: str):
        count = _SIZE()
        _call(f"LiteRtGetNumSignature{side}s", signature, ctypes.byref(count), model=self.name)
        buffers = (ctypes.c_void_p * count.value)()
        for index in range(count.value):
            tensor = self._make(f"LiteRtGetSignature{side}TensorByIndex", signature, index)
            tensor_type = ctypes.create_string_buffer(_TENSOR_TYPE_BYTES)
            _call("LiteRtGetRankedTensorType", tensor, tensor_type, model=self.name)
            requirements = self._make(f"LiteRtGetCompiledModel{side}BufferRequirements", self._compiled, 0, index)
            buffer = self._make("LiteRtCreateManagedTensorBufferFromRequirements", environment, tensor_type,
                                requirements, destroy="LiteRtDestroyTensorBuffer")
            buffers[index] = buffer.value
        return buffers

    def _fill_inputs(self, flatbuffer: bytes, seed: int) -> None:
        arrays = random_inputs(builtin_interpreter(flatbuffer), seed)
        if len(arrays) != len(self._inputs):
            raise ValueError(f"{self.name}: {len(arrays)} inputs but its signature has {len(self._inputs)}")
        for buffer, array in zip(self._inputs, arrays, strict=True):
            size = _SIZE()
            _call("LiteRtGetTensorBufferPackedSize", buffer, ctypes.byref(size), model=self.name)
            if size.value != array.nbytes:
                raise ValueError(f"{self.name}: an input buffer of {size.value} bytes for {array.nbytes} bytes of data")
            address = ctypes.c_void_p()
            _call("LiteRtLockTensorBuffer", buffer, ctypes.byref(address), LOCK_WRITE, model=self.name)
            ctypes.memmove(address, np.ascontiguousarray(array).ctypes.data, array.nbytes)
            _call("LiteRtUnlockTensorBuffer", buffer, model=self.name)

    def invoke(self) -> None:
        """One run of the model (signature 0)."""
        _call("LiteRtRunCompiledModel", self._compiled, 0, len(self._inputs), self._inputs, len(self._outputs),
              self._outputs, model=self.name)

    def run_round(self, runs: int) -> None:
        """One untimed invoke (another model may have run in between), then ``runs`` profiled ones."""
        self.invoke()
        _call("LiteRtResetProfiler", self._profiler, model=self.name)
        _call("LiteRtStartProfiler", self._profiler, model=self.name)
        for _ in range(runs):
            _fresh_time_slice()
            start = time.thread_time_ns()
            self.invoke()
            self.cpu_ms.append((time.thread_time_ns() - start) / 1e6)
        _call("LiteRtStopProfiler", self._profiler, model=self.name)
        self._collect(runs)

    def _collect(self, runs: int) -> None:
        count = ctypes.c_int()
        _call("LiteRtGetNumProfilerEvents", self._profiler, ctypes.byref(count), model=self.name)
        events = (_Event * max(count.value, 1))()
        if count.value:
            _call("LiteRtGetProfilerEvents", self._profiler, count, events, model=self.name)
        nodes = [event for event in events[:count.value]
                 if event.event_type in (OPERATOR_EVENT, DELEGATE_OPERATOR_EVENT)]
        if not nodes or len(nodes) % runs:
            raise RuntimeError(f"{self.name}: the LiteRT profiler recorded {len(nodes)} op events for {runs} runs")
        per_run = len(nodes) // runs
        tags = [event.tag.decode(errors="replace") for event in nodes]
        if self.tags is None:
            self.tags, self.kinds = tags[:per_run], [event.event_type for event in nodes[:per_run]]
        if tags != self.tags * runs:
            raise RuntimeError(f"{self.name}: the op events differ from one run to the next")
        self.samples.append(np.array([event.elapsed_time_us for event in nodes], dtype=np.float64)
                            .reshape(runs, per_run))

    def profile(self) -> OpProfile:
        """The profile of the runs so far."""
        samples = np.concatenate(self.samples)
        ms = clean_runs_mean(samples) / 1e3
        kinds = {OPERATOR_EVENT: "builtin", DELEGATE_OPERATOR_EVENT: "xnnpack"}
        nodes = tuple(OpProfileRow(tag, f"{kinds[kind]}:{index}", round(float(value), 5))
                      for index, (tag, kind, value) in enumerate(zip(self.tags, self.kinds, ms, strict=True)))
        return OpProfile(self.name, int(samples.shape[0]), nodes, round(float(np.median(self.cpu_ms)), 4))

    def close(self) -> None:
        """Free what LiteRT allocated for this model."""
        while self._owned:
            destroy, handle = self._owned.pop()
            getattr(_library(), destroy)(handle)


def profile_interleaved(models: Sequence[str | os.PathLike | bytes], *, names: Sequence[str | None] | None = None,
                        rounds: int = 5, round_runs: int = 10, seed: int = 0) -> list[OpProfile]:
    """Profile several TFLite models op by op, a round of each in turn, at one thread with XNNPACK.

    Args:
        models: ``.tflite`` paths or flatbuffer bytes.
        names: the ``model`` field of each profile (default: the path, or ``<bytes>``).
        rounds: rounds per model.
        round_runs: profiled invokes per round (each round starts with one untimed invoke).
        seed: seeds the random inputs.

    Returns:
        One `OpProfile` per model, in the order given.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that is not TFLite (named), or a bad argument.
        RuntimeError: LiteRT refused a step (named), or its profiler recorded events this module
            cannot split into runs.

    Example:
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> (profile,) = profile_interleaved([tiny_tflite("softmax")], names=["softmax"], rounds=2, round_runs=4)
        >>> profile.runs, [node.name for node in profile.nodes], profile.nodes[1].op  # int8 SOFTMAX: LiteRT's kernel
        (8, ['xnnpack:0', 'builtin:1', 'xnnpack:2'], 'SOFTMAX')
    """
    if rounds < 1 or round_runs < 1:
        raise ValueError(f"rounds and round_runs must be >= 1, got {rounds} and {round_runs}")
    if not models:
        raise ValueError("no models to profile")
    names = list(names) if names is not None else [None] * len(models)
    if len(names) != len(models):
        raise ValueError(f"{len(names)} names for {len(models)} models")
    from mobileseg.console import quietly

    environment = ctypes.c_void_p()
    quietly(_call, "LiteRtCreateEnvironment", 0, None, ctypes.byref(environment), model="LiteRT environment")
    profiled: list[_Profiled] = []
    try:
        for model, name in zip(models, names, strict=True):
            profiled.append(_Profiled(environment, model, name, seed))
        for item in profiled:
            item.invoke()  # warm-up: first-run allocations and caches
        for _ in range(rounds):
            for item in profiled:
                item.run_round(round_runs)
        return [item.profile() for item in profiled]
    finally:
        for item in profiled:
            item.close()
        quietly(_library().LiteRtDestroyEnvironment, environment)
