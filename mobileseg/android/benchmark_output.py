"""Parse what TFLite/LiteRT ``benchmark_model`` prints, in every format it has had.

``benchmark_model`` changed its output several times; a phone in a drawer may carry any
build. This parser reads them all (line formats checked against the tool's sources,
``tensorflow/lite/tools/benchmark/benchmark_model.cc`` and ``xla/tsl/util/stats_calculator``,
and against outputs posted in upstream issues):

- the final summary, old: ``Average inference timings in us: Warmup: W, Init: I, Inference: X``
  (some 2018 builds print ``no stats:`` instead of ``Inference:``), and new:
  ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): X``;
- the per-phase statistics ``count=N first= curr= min= max= avg= std=``, with or without
  ``p5= median= p95=``, and the single-run form ``count=1 curr=X`` / ``count=N curr=X(all same)``;
- any log prefix (``INFO: ``, glog ``I0101 12:00:00.000 123 file.cc:1] ``);
- numbers in scientific notation (``avg=1.24027e+06`` for a run slower than a second);
- memory: ``Peak memory footprint (MB): init=A overall=B`` (2020),
  ``Memory footprint delta from the start of the tool (MB): init=A overall=B`` and
  ``Overall peak memory footprint (MB) via periodic monitoring: P`` (2021 on);
- op profiling tables (``--enable_op_profiling``), with or without the old ``[start]``
  column, tab- or space-separated, under ``Operator-wise Profiling Info for Regular
  Benchmark Runs:`` or (old builds) without that heading;
- delegate coverage (``Explicitly applied XNNPACK delegate, and the model graph will be
  completely executed by the delegate.``) and ``ERROR:`` lines.

All times are kept in the tool's unit (microseconds for runs, milliseconds in op tables);
`BenchmarkOutput.summary_ms` gives the milliseconds a report wants. A phase's statistics line
is read by `mobileseg.android.run_stats`, the op-profiling tables by `mobileseg.android.op_profile`.
"""

from __future__ import annotations

import dataclasses
import re

from mobileseg.android.errors import BenchmarkOutputError, TruncatedOutputError
from mobileseg.android.op_profile import OpProfileRow, OpTypeRow, parse_op_tables
from mobileseg.android.run_stats import NUM, STATS_LINE, RunStats, finite_number, optional_number

# Log prefixes: "INFO: ", "WARNING: ", "VERBOSE: ", "ERROR: " (TFLITE_LOG) or a glog header.
_PREFIX = re.compile(
    r"^(?:(?:INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG|FATAL): "
    r"|[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]*\] )")
_NEW_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
    rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_OLD_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: ({NUM}), Init: ({NUM}), "
    rf"(?:Inference|no stats): ({NUM})")
_MEM_DELTA = re.compile(
    rf"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({NUM}) overall=({NUM})")
_MEM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUM})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({NUM})")
_APPLIED = re.compile(
    r"Explicitly applied (.+?) delegate, and the model graph will be (completely|partially)"
    r" executed by the delegate(?: w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (.+?) delegate is explicitly applied, the model graph will not")


@dataclasses.dataclass(frozen=True)
class BenchmarkOutput:
    """Everything useful in one ``benchmark_model`` run's output.

    Args:
        format: which summary format was found: ``"inference_timings"`` (2019 on) or
            ``"average_inference_timings"`` (2018).
        init_us: initialization time in microseconds.
        first_inference_us: the first (cold) inference, None for the 2018 format.
        warmup_avg_us: average warm-up run.
        inference_avg_us: average regular run: the latency that matters.
        warmup: statistics of the warm-up phase, when printed.
        inference: statistics of the regular runs, when printed.
        mem_init_mb, mem_overall_mb: memory footprint deltas (init and whole run).
        peak_mem_mb: peak footprint from periodic monitoring
            (``--report_peak_memory_footprint``), or for 2020 builds the ``overall`` value
            of their ``Peak memory footprint (MB)`` line; None when neither is printed.
        model_size_mb: the model file size the tool read.
        op_profile: per-node rows of the regular runs' "Run Order" table, or None.
        op_types: the "Summary by node type" rows of the regular runs, or None.
        delegation: one dict per delegate the tool reports applying:
            ``{"delegate", "coverage": "full"|"partial"|"none", "kernels"}``.
        errors: the ``ERROR:`` lines.

    Example:
        >>> text = '''INFO: Initialized session in 3.1ms.
        ... INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds
        ... INFO: count=2 first=5200 curr=4800 min=4800 max=5200 avg=5000 std=200
        ... INFO: Running benchmark for at least 50 iterations and at least 1 seconds
        ... INFO: count=50 first=4700 curr=4650 min=4500 max=5100 avg=4640.2 std=61 p5=4550 median=4630 p95=4800
        ... INFO: Inference timings in us: Init: 3100, First inference: 5200, Warmup (avg): 5000, Inference (avg): 4640.2
        ... INFO: Overall peak memory footprint (MB) via periodic monitoring: 1.24e+02'''
        >>> out = parse_benchmark_output(text)
        >>> out.inference_avg_us, out.inference.count, out.inference.median_us, out.peak_mem_mb
        (4640.2, 50, 4630.0, 124.0)
        >>> out.summary_ms()["avg_ms"], out.summary_ms()["p95_ms"]
        (4.6402, 4.8)
    """

    format: str
    init_us: float
    first_inference_us: float | None
    warmup_avg_us: float | None
    inference_avg_us: float
    warmup: RunStats | None = None
    inference: RunStats | None = None
    mem_init_mb: float | None = None
    mem_overall_mb: float | None = None
    peak_mem_mb: float | None = None
    model_size_mb: float | None = None
    op_profile: tuple[OpProfileRow, ...] | None = None
    op_types: tuple[OpTypeRow, ...] | None = None
    delegation: tuple[dict, ...] = ()
    errors: tuple[str, ...] = ()

    def summary_ms(self) -> dict:
        """The latency figures in milliseconds, None where the output lacks them.

        Keys: ``avg_ms`` (mean of the regular runs), ``std_ms``, ``min_ms``, ``max_ms``,
        ``median_ms``, ``p5_ms``, ``p95_ms``, ``init_ms``, ``first_ms``, ``warmup_ms``,
        ``runs``, ``peak_mb`` (see ``peak_mem_mb``), ``mem_overall_mb``.

        Example:
            >>> out = BenchmarkOutput("average_inference_timings", 1500, None, 2200, 2000)
            >>> out.summary_ms()["avg_ms"], out.summary_ms()["std_ms"], out.summary_ms()["runs"]
            (2.0, None, None)
        """
        stats = self.inference

        def ms(value: float | None) -> float | None:  # 6 decimals: ns, no float noise
            return None if value is None else round(value / 1000.0, 6)

        return {
            "avg_ms": ms(self.inference_avg_us),
            "std_ms": ms(stats.std_us) if stats else None,
            "min_ms": ms(stats.min_us) if stats else None,
            "max_ms": ms(stats.max_us) if stats else None,
            "median_ms": ms(stats.median_us) if stats else None,
            "p5_ms": ms(stats.p5_us) if stats else None,
            "p95_ms": ms(stats.p95_us) if stats else None,
            "init_ms": ms(self.init_us),
            "first_ms": ms(self.first_inference_us),
            "warmup_ms": ms(self.warmup_avg_us),
            "runs": stats.count if stats else None,
            "peak_mb": self.peak_mem_mb,
            "mem_overall_mb": self.mem_overall_mb,
        }

    def op_profile_records(self) -> list[dict] | None:
        """The op profile as JSON-ready dicts, with each node's share of one inference.

        ``share`` is the node's time per inference (average call time x calls) over the
        sum of all nodes, a fraction in [0, 1]; it is computed rather than copied because
        old builds print a wrong ``[%]`` column.

        Example:
            >>> out = BenchmarkOutput("inference_timings", 1, 1, 1, 1, op_profile=(
            ...     OpProfileRow("CONV_2D", "a", 3.0), OpProfileRow("ADD", "b", 0.5, 2)))
            >>> [(r["op"], r["ms_per_run"], r["share"]) for r in out.op_profile_records()]
            [('CONV_2D', 3.0, 0.75), ('ADD', 1.0, 0.25)]
        """
        if self.op_profile is None:
            return None
        total = sum(row.ms_per_run for row in self.op_profile)
        return [{"op": row.op, "name": row.name, "avg_ms": row.avg_ms,
                 "times_called": row.times_called, "ms_per_run": round(row.ms_per_run, 6),
                 "share": _share(row.ms_per_run, total)} for row in self.op_profile]

    def op_type_records(self) -> list[dict] | None:
        """The node-type summary as JSON-ready dicts with shares (see `op_profile_records`).

        Example:
            >>> out = BenchmarkOutput("inference_timings", 1, 1, 1, 1, op_types=(
            ...     OpTypeRow("CONV_2D", 15, 3.0, 15), OpTypeRow("ADD", 2, 1.0, 2)))
            >>> [(r["op"], r["count"], r["share"]) for r in out.op_type_records()]
            [('CONV_2D', 15, 0.75), ('ADD', 2, 0.25)]
        """
        if self.op_types is None:
            return None
        total = sum(row.ms_per_run for row in self.op_types)
        return [{"op": row.op, "count": row.count, "ms_per_run": row.ms_per_run,
                 "times_called": row.times_called, "share": _share(row.ms_per_run, total)}
                for row in self.op_types]


def _share(part: float, total: float) -> float:
    return round(part / total, 6) if total > 0 else 0.0


def strip_prefix(line: str) -> str:
    """A log line without its ``INFO: ``-style or glog prefix (and trailing whitespace).

    Args:
        line: one line of output.

    Example:
        >>> strip_prefix("INFO: count=1 curr=5")
        'count=1 curr=5'
        >>> strip_prefix("I0412 10:01:02.345678   4321 benchmark_model.cc:150] Loaded model m")
        'Loaded model m'
    """
    line = line.rstrip("\r\n")
    return _PREFIX.sub("", line, count=1).rstrip()


def _delegation(lines: list[str]) -> tuple[dict, ...]:
    found = []
    for line in lines:
        applied = _APPLIED.search(line)
        if applied:
            coverage = "full" if applied.group(2) == "completely" else "partial"
            kernels = int(applied.group(3)) if applied.group(3) else (1 if coverage == "full"
                                                                       else None)
            found.append({"delegate": applied.group(1), "coverage": coverage, "kernels": kernels})
            continue
        skipped = _NOT_APPLIED.search(line)
        if skipped:
            found.append({"delegate": skipped.group(1), "coverage": "none", "kernels": 0})
    return tuple(found)


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse the complete output of one ``benchmark_model`` run.

    Args:
        text: stdout and stderr of the tool, in any of its historical formats.

    Returns:
        The parsed `BenchmarkOutput`.

    Raises:
        TruncatedOutputError: the tool started measuring but the final timings are missing
            (killed, or the connection dropped).
        BenchmarkOutputError: the text holds no ``benchmark_model`` result at all.

    Example:
        >>> old = '''Initialized session in 38.467ms
        ... Running benchmark for at least 50 iterations and at least 1 seconds
        ... count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929
        ... Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9'''
        >>> out = parse_benchmark_output(old)
        >>> out.format, out.inference_avg_us, out.inference.std_us, out.first_inference_us
        ('average_inference_timings', 79760.9, 1929.0, None)
        >>> parse_benchmark_output("INFO: count=3 first=9 curr=8 min=8 max=9 avg=8.3 std=0")
        Traceback (most recent call last):
        ...
        mobileseg.android.errors.TruncatedOutputError: benchmark_model output ends before its final timings (after 1 lines); last line: 'INFO: count=3 first=9 curr=8 min=8 max=9 avg=8.3 std=0'
    """
    raw_lines = text.splitlines()
    lines = [strip_prefix(line) for line in raw_lines]
    errors = tuple(raw.split("ERROR: ", 1)[1].strip() for raw in raw_lines if "ERROR: " in raw)

    # One statistics line per phase (warm-up, then regular runs); a phase with no run
    # prints count=0 and is kept as None. The op profiler's own "Timings (microseconds):
    # count=..." line does not start with count= and so is not mistaken for a phase.
    phases: list[RunStats | None] = []
    values: dict[str, float | None] = {}
    fmt = None
    mem_init = mem_overall = peak = size = None
    for line in lines:
        if (stats := STATS_LINE.match(line)) is not None:
            phases.append(None if stats.group(1) == "0" else RunStats.parse(line))
            continue
        if (match := _NEW_SUMMARY.search(line)) is not None:
            fmt = "inference_timings"
            values = {"init": finite_number(match.group(1)), "first": optional_number(match.group(2)),
                      "warmup": optional_number(match.group(3)), "inference": finite_number(match.group(4))}
        elif (match := _OLD_SUMMARY.search(line)) is not None:
            fmt = "average_inference_timings"
            values = {"warmup": optional_number(match.group(1)), "init": finite_number(match.group(2)),
                      "first": None, "inference": finite_number(match.group(3))}
        elif (match := _MEM_DELTA.search(line)) is not None:
            mem_init, mem_overall = finite_number(match.group(2)), finite_number(match.group(3))
            if match.group(1) == "Peak memory footprint" and peak is None:  # 2020 wording
                peak = mem_overall
        elif (match := _MEM_PEAK.search(line)) is not None:
            peak = finite_number(match.group(1))
        elif (match := _MODEL_SIZE.search(line)) is not None:
            size = finite_number(match.group(1))

    if fmt is None:
        started = phases or any(
            line.startswith(("STARTING!", "Loaded model", "Initialized session", "Running"))
            for line in lines)
        if started and not errors:
            tail = "\n".join(raw for raw in raw_lines[-3:] if raw.strip())
            last = next((raw for raw in reversed(raw_lines) if raw.strip()), "")
            raise TruncatedOutputError(
                f"benchmark_model output ends before its final timings (after {len(raw_lines)} "
                f"lines); last line: {last!r}", tail=tail)
        detail = "; ".join(errors) if errors else "no 'Inference timings' line"
        raise BenchmarkOutputError(f"no benchmark_model result in the output: {detail}")

    warmup = phases[-2] if len(phases) >= 2 else None
    inference = phases[-1] if phases else None
    op_profile, op_types = parse_op_tables(lines)
    return BenchmarkOutput(
        format=fmt, init_us=values["init"], first_inference_us=values["first"],
        warmup_avg_us=values["warmup"], inference_avg_us=values["inference"],
        warmup=warmup, inference=inference, mem_init_mb=mem_init, mem_overall_mb=mem_overall,
        peak_mem_mb=peak, model_size_mb=size, op_profile=op_profile, op_types=op_types,
        delegation=_delegation(lines), errors=errors)
