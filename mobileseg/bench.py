"""Benchmark TFLite models: ``python -m mobileseg.bench --model A.tflite[,B.tflite] [--threads 1,4]``.

Locally the models run in LiteRT (``ai_edge_litert``) on this CPU, timed
*interleaved* (a round of each model in turn, until every median is stable) so
machine noise hits all of them alike; several models give one comparison table
with each model's median relative to the first. Every row carries the delegate
report: XNNPACK partitions and the ops left to the built-in kernels. ``--clock thread_cpu``
(one thread) times the CPU time of the invoking thread instead of the wall clock: the
latency on an idle core, on a machine other jobs are loading (`mobileseg.litert_measure`).

With ``--adb`` the same models run on Android phones through
`mobileseg.android.multi_device` (``--serial`` picks phones, ``--delegate``
``xnnpack|gpu|nnapi|none``, ``--op_profile`` adds per-op times).

With ``--arm_emulated`` the models are not timed but run once more through LiteRT's aarch64
build under qemu-user (`mobileseg.arm`; ``make arm_root`` prepares it, ``--arm_root`` and
``--arm_cpu`` choose the root and the emulated CPU) on ``--arm_scenes`` synthetic scenes, and the
outputs are compared with this CPU's: class maps, logits in int8 steps, XNNPACK partitions.

``--json`` prints the result as JSON instead of the table; ``--out FILE`` writes
the JSON to a file (atomically) either way. Both paths give
``{"devices": [{"fingerprint": {...}, "records": [{record keys...}]}]}`` with the
record keys of `mobileseg.litert_measure.LatencyRecord`.

Token merging (Segformer++, ``--tome RATIO`` of export and evaluate) rewrites a ``.keras``
network; bench times ``.tflite`` files only, so it times the files that
``python -m mobileseg.export --tome RATIO`` writes (``RUN_DIR/export_tomeRATIO/``), e.g.
``--model runs/x/export/model_int8.tflite,runs/x/export_tome0.5/model_int8.tflite``.

Exit codes: 0 ok, 2 bad input (missing file, not a TFLite file, a file with a dynamic input
size, bad flag value, no adb, several phones without ``--serial``), 3 the phone could not be
reached or was lost (as ``search`` and ``pipeline``: `mobileseg.latency.device_lost.adb_exit_code`),
1 a benchmark that failed on the phone, an emulated ARM run whose output disagrees with this CPU's
or failed, or ``--out`` could not be written; no arm64 root for ``--arm_emulated`` is bad input (2).
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Iterable, Sequence

LOCAL_DELEGATES = ("xnnpack", "none")


class BenchInputError(ValueError):
    """A flag value or model file the benchmark cannot use; the message names it."""


def parse_threads(text: str) -> list[int]:
    """``"1,4"`` -> ``[1, 4]``: positive thread counts, each once, in order.

    Example:
        >>> parse_threads("1, 4,1")
        [1, 4]
        >>> parse_threads("0")
        Traceback (most recent call last):
        ...
        mobileseg.bench.BenchInputError: bad --threads '0': expected positive integers separated by commas, e.g. 1,4
    """
    counts = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise BenchInputError(f"bad --threads {text!r}: expected positive integers separated "
                                  "by commas, e.g. 1,4")
        if int(part) not in counts:
            counts.append(int(part))
    return counts


def split_models(values: Iterable[str] | None) -> list[str]:
    """Repeated and comma-separated ``--model`` values -> one list of paths.

    Example:
        >>> split_models(["a.tflite,b.tflite", "c.tflite"])
        ['a.tflite', 'b.tflite', 'c.tflite']
    """
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def check_models(models: Sequence[str]) -> None:
    """Fail before any measurement if a model is missing, not a TFLite file or of dynamic shape (named).

    A dynamic input size (-1) would be timed at LiteRT's default size of 1: a meaningless
    0.001 ms, here and on a phone alike.
    """
    from mobileseg.litert_interpreter import check_model

    if not models:
        raise BenchInputError("no model given: pass --model FILE.tflite (repeatable or comma-separated)")
    for model in models:
        try:
            check_model(model)
        except (FileNotFoundError, ValueError) as error:
            raise BenchInputError(str(error)) from None


def bench_local(models: Sequence[str], threads: Sequence[int], *, delegate: str = "xnnpack",
                warmup: int = 5, min_runs: int = 20, max_runs: int = 500,
                stable_rel: float = 0.02, clock: str = "wall") -> dict:
    """Time models on this CPU, interleaved, at each thread count.

    Args:
        models: ``.tflite`` paths.
        threads: thread counts; all models are timed together at each.
        delegate: ``xnnpack`` or ``none``.
        warmup, min_runs, max_runs, stable_rel, clock: see `mobileseg.litert_measure.measure_interleaved`.

    Returns:
        ``{"devices": [{"fingerprint": local fingerprint, "clock": clock, "records": [record dicts]}]}``,
        records ordered by thread count, then model.

    Example:
        >>> import pathlib, tempfile
        >>> from mobileseg.latency.testing import tiny_tflite
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "conv.tflite"
        >>> _ = path.write_bytes(tiny_tflite("conv"))
        >>> result = bench_local([str(path)], [1], max_runs=30)
        >>> [record["xnnpack_partitions"] for record in result["devices"][0]["records"]]
        [1]
    """
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.litert_measure import measure_interleaved

    records = []
    for count in threads:
        records += [record.to_dict() for record in measure_interleaved(
            models, count, delegate=delegate, warmup=warmup, min_runs=min_runs,
            max_runs=max_runs, stable_rel=stable_rel, clock=clock)]
    return {"devices": [{"fingerprint": local_fingerprint(threads=None, delegate=delegate), "clock": clock,
                         "records": records}]}


def _fallback_summary(ops: Sequence[str]) -> str:
    counts = collections.Counter(ops)
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items()) or "-"


def format_table(result: dict) -> str:
    """A plain-text comparison table of `bench_local` output, one block per device.

    ``vs first``: each model's median over the first model's at the same thread count.

    Example:
        >>> record = {"model": "a.tflite", "threads": 1, "delegate": "xnnpack", "avg_ms": 1.0,
        ...           "median_ms": 1.0, "min_ms": 0.9, "p90_ms": 1.2, "std_ms": 0.1,
        ...           "init_ms": 3.0, "peak_mb": 0.5, "runs": 40, "xnnpack_partitions": 2,
        ...           "fallback_ops": ["SOFTMAX"]}
        >>> print(format_table({"devices": [{"fingerprint": {"cpu": "X", "cores": 2},
        ...                                  "records": [record]}]}))  # doctest: +NORMALIZE_WHITESPACE
        X, 2 cores
        model     threads  median ms  min ms  p90 ms  std ms  runs  init ms  peak MB  vs first  partitions  fallback ops
        a.tflite  1        1.000      0.900   1.200   0.100   40    3.0      0.5      1.00x     2           SOFTMAX
    """
    header = ["model", "threads", "median ms", "min ms", "p90 ms", "std ms", "runs", "init ms",
              "peak MB", "vs first", "partitions", "fallback ops"]
    blocks = []
    for device in result["devices"]:
        fingerprint = device.get("fingerprint", {})
        title = ", ".join(str(part) for part in (
            fingerprint.get("cpu") or fingerprint.get("model") or fingerprint.get("serial"),
            f"{fingerprint['cores']} cores" if "cores" in fingerprint else None,
            f"LiteRT {fingerprint['runtime_version']}" if fingerprint.get("runtime_version") else None,
            "thread CPU clock" if device.get("clock") == "thread_cpu" else None,
        ) if part)
        first = {}
        rows = [header]
        for record in device["records"]:
            base = first.setdefault(record["threads"], record["median_ms"])
            peak = record.get("peak_mb")
            rows.append([
                str(record["model"]), str(record["threads"]), f"{record['median_ms']:.3f}",
                f"{record['min_ms']:.3f}", f"{record['p90_ms']:.3f}", f"{record['std_ms']:.3f}",
                str(record["runs"]), f"{record['init_ms']:.1f}",
                "-" if peak is None else f"{peak:.1f}",
                f"{record['median_ms'] / base:.2f}x" if base else "-",
                str(record["xnnpack_partitions"]), _fallback_summary(record["fallback_ops"])])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        blocks.append("\n".join([title or "device", *lines]))
    return "\n\n".join(blocks)


def _define_flags(flag_values) -> None:
    from absl import flags

    def define(kind, name, default, help_text, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name=name, default=default, help=help_text,
                                         flag_values=flag_values, **kwargs)

    define("multi_string", "model", None,
           "TFLite file(s) to time; repeat the flag or separate with commas.")
    define("string", "threads", "1", "LiteRT thread counts, comma-separated, e.g. 1,4.")
    define("bool", "json", False, "Print JSON instead of the table.")
    define("string", "out", None, "Also write the JSON result to this file (atomic).")
    define("integer", "warmup_runs", 5, "Untimed invokes before timing.")
    define("integer", "min_runs", 20, "Local: timed invokes before a model may stop.")
    define("integer", "max_runs", 500, "Local: timed invokes after which a model stops.")
    define("float", "stable_rel", 0.02,
           "Local: stop once the median moves less than this (relative) between rounds.")
    define("enum", "clock", "wall", "Local: wall (the latency as seen) or thread_cpu (the invoking thread's CPU "
           "time: the idle-core latency on a loaded machine; --threads 1 only).", enum_values=["wall", "thread_cpu"])
    define("bool", "adb", False, "Run on Android phones through adb instead of this CPU.")
    define("string", "adb_path", "adb", "With --adb: the adb executable.")
    define("multi_string", "serial", None, "With --adb: device serial(s); default: the only connected phone.")
    define("enum", "delegate", "xnnpack", "LiteRT delegate (gpu and nnapi need --adb).",
           enum_values=["xnnpack", "gpu", "nnapi", "none"])
    define("bool", "op_profile", False, "With --adb: per-op profile from benchmark_model.")
    define("integer", "num_runs", 50, "With --adb: timed runs per model.")
    define("bool", "arm_emulated", False, "Compare outputs with LiteRT's aarch64 build under qemu-user.")
    define("string", "arm_root", None, "With --arm_emulated: the arm64 root (default $MOBILESEG_ARM_ROOT, "
           "else ~/.cache/mobileseg/arm64-root; make arm_root).")
    define("string", "arm_cpu", "max,sme=off", "With --arm_emulated: the emulated CPU (qemu -cpu; "
           "see mobileseg.arm.root).")
    define("integer", "arm_scenes", 1, "With --arm_emulated: synthetic scenes each model runs on.")


def _bench_adb(models, threads, flag_values) -> tuple[dict, str]:
    from mobileseg.android.multi_device import benchmark_on_devices
    from mobileseg.android.table import format_table as adb_table

    result = benchmark_on_devices(models, list(flag_values.serial or []), threads,
                                  delegate=flag_values.delegate, op_profile=flag_values.op_profile,
                                  warmup_runs=flag_values.warmup_runs,
                                  num_runs=flag_values.num_runs, adb=flag_values.adb_path)
    return result, adb_table(result)


def _bench_arm(models, flag_values) -> tuple[dict, str, bool]:
    from mobileseg.arm import parity
    from mobileseg.arm.root import find_root

    result = parity.check_files(find_root(flag_values.arm_root), models, cpu=flag_values.arm_cpu,
                                scenes=flag_values.arm_scenes)
    return result, parity.format_table(result), all(row["agrees"] for row in result["rows"])


def run(flag_values, argv: Sequence[str]) -> int:
    """Run the benchmark the parsed flags describe; returns the exit code."""
    if len(argv) > 1:
        print(f"mobileseg.bench: error: unexpected arguments {list(argv[1:])}; "
              "models go in --model", file=sys.stderr)
        return 2
    try:
        models = split_models(flag_values.model)
        threads = parse_threads(flag_values.threads)
        check_models(models)
        if flag_values.clock != "wall" and (flag_values.adb or flag_values.arm_emulated):
            raise BenchInputError("--clock thread_cpu times this CPU: a phone's benchmark_model has the wall clock "
                                  "only, and --arm_emulated does not time")
        agrees = True
        if flag_values.arm_emulated:
            from mobileseg.arm.parity import ArmRunError
            from mobileseg.arm.root import ArmRootError

            try:
                result, text, agrees = _bench_arm(models, flag_values)
            except ArmRootError as error:
                raise BenchInputError(str(error)) from None
            except ArmRunError as error:
                print(f"mobileseg.bench: error: {error}", file=sys.stderr)
                return 1
        elif flag_values.adb:
            from mobileseg.android.errors import AndroidBenchError
            from mobileseg.latency.device_lost import adb_exit_code

            try:
                result, text = _bench_adb(models, threads, flag_values)
            except AndroidBenchError as error:
                print(f"mobileseg.bench: error: {error}", file=sys.stderr)
                return adb_exit_code(error)
        else:
            if flag_values.delegate not in LOCAL_DELEGATES:
                raise BenchInputError(f"--delegate {flag_values.delegate} needs a phone (--adb); "
                                      f"this CPU runs {' or '.join(LOCAL_DELEGATES)}")
            if flag_values.serial or flag_values.op_profile:
                raise BenchInputError("--serial and --op_profile need --adb")
            if flag_values.clock == "thread_cpu" and threads != [1]:
                raise BenchInputError(f"--clock thread_cpu times the invoking thread only: it needs --threads 1, "
                                      f"got {flag_values.threads}")
            result = bench_local(models, threads, delegate=flag_values.delegate,
                                 warmup=flag_values.warmup_runs, min_runs=flag_values.min_runs,
                                 max_runs=flag_values.max_runs, stable_rel=flag_values.stable_rel,
                                 clock=flag_values.clock)
            text = format_table(result)
    except (BenchInputError, ValueError, FileNotFoundError) as error:
        print(f"mobileseg.bench: error: {error}", file=sys.stderr)
        return 2
    document = json.dumps(result, indent=1)
    if flag_values.out:
        from mobileseg.atomic_write import AtomicWriteError, write_atomic

        try:
            write_atomic(flag_values.out, document + "\n")
        except AtomicWriteError as error:
            print(f"mobileseg.bench: error: {error}", file=sys.stderr)
            return 1
    print(document if flag_values.json else text)
    return 0 if agrees else 1


def main() -> None:
    """Entry point of ``python -m mobileseg.bench``."""
    from absl import app, flags

    from mobileseg.console import quiet_native_logs

    quiet_native_logs()
    _define_flags(flags.FLAGS)
    app.run(lambda argv: run(flags.FLAGS, argv))


if __name__ == "__main__":
    main()
