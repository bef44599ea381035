"""``python -m mobileseg.latency COMMAND``: build a block latency table, fit its overhead, validate it.

Commands:

- ``build``: every block the space can produce at ``--input_size``
  (`mobileseg.latency.space_blocks.enumerate_space`) that the table ``--out`` lacks is built
  alone, converted as export converts it and timed, on this CPU (``--backend local``,
  LiteRT) or on a phone (``--backend adb --serial S``, ``benchmark_model``). The file is
  rewritten after every block: a killed build, or a phone unplugged mid-build, loses
  nothing, and running the same command again measures only the rest. A block whose
  XNNPACK delegation depends on the quantization parameters its conversion happens to get
  (ops left to the built-in kernels, e.g. an int8 BATCH_MATMUL, which XNNPACK takes only
  when its second input's zero point is 0) is converted ``--conversions`` times (default 3)
  and keeps the median. ``--clock thread_cpu`` times the CPU time of the one LiteRT thread
  instead of the wall clock: the idle-core latency, on a machine others are loading.
- ``calibrate``: fits the table's overhead (``measured ~ scale * sum of blocks + offset``)
  on ``--calibration_samples`` networks timed end to end, chosen to span the predicted
  range with ``--calibration_seed`` and never one of the validation samples of ``--seed``.
- ``validate``: ``--samples`` seeded random networks, all converted, then timed end to end in
  ``--rounds`` rounds on the table's device (``local``: in a spawned process without TensorFlow),
  against the prediction; writes ``--out``/validation.json
  and ``--out``/scatter.png. When the table has no overhead (or with ``--recalibrate``) the
  calibration networks are timed in the same rounds and the overhead fitted on them first.
  Measured networks and their TFLite files are kept in ``--out``, so a killed run resumes.
- ``cache list`` / ``cache clear [--device ID]``: the persistent latency cache
  (`mobileseg.latency.cache`): every block any command measured on a device, reused by every
  later table of that device instead of measuring it again (``--latency_cache DIR|off``).

Example:
    python -m mobileseg.latency build --space search_space/default.yaml --input_size 360x480 \\
        --out runs/latency/latency_table.json
    python -m mobileseg.latency build --space search_space/default.yaml --backend adb \\
        --serial R58M --threads 4 --out runs/latency/pixel7_table.json
    python -m mobileseg.latency validate --space search_space/default.yaml --input_size 360x480 \\
        --table runs/latency/latency_table.json --samples 100 --out runs/latency/validation
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags

from mobileseg.cli_flags import parse_size
from mobileseg.latency.device_lost import EXIT_DEVICE_LOST, build_interrupted
from mobileseg.provenance import versions

FLAGS = flags.FLAGS
COMMANDS = ("build", "calibrate", "validate")
CACHE_ACTIONS = ("list", "clear")


def define_flags() -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    flags.DEFINE_string("space", None, "Search space YAML file.")
    flags.DEFINE_string("input_size", "360x480", "Input HEIGHTxWIDTH.")
    flags.DEFINE_integer("num_classes", 12, "Output classes of the head.")
    flags.DEFINE_enum("quantization", "int8", ["int8", "fp16", "fp32"],
                      "How blocks and networks are converted (int8: full integer, as shipped).")
    flags.DEFINE_integer("threads", 1, "Threads of LiteRT / benchmark_model (validate, calibrate: "
                         "taken from the table).")
    flags.DEFINE_enum("clock", "wall", ["wall", "thread_cpu"],
                      "local: how invokes are timed: wall (latency as seen) or thread_cpu (CPU "
                      "time of the one LiteRT thread: idle-core latency on a shared machine; "
                      "needs --threads 1). validate, calibrate: taken from the table.")
    flags.DEFINE_enum("backend", "local", ["local", "adb"],
                      "local: LiteRT on this CPU; adb: benchmark_model on an Android phone.")
    flags.DEFINE_string("serial", None, "adb: the phone (default: the only one connected).")
    flags.DEFINE_string("adb", "adb", "adb: the adb executable.")
    flags.DEFINE_string("out", None, "build: the table file to create or complete; validate: the "
                        "result folder; calibrate: where its networks are kept (default: "
                        "next to the table).")
    flags.DEFINE_string("table", None, "validate, calibrate: the latency table file.")
    flags.DEFINE_integer("samples", 100, "validate: random networks to measure.")
    flags.DEFINE_integer("seed", 0, "validate: seed of the random networks.")
    flags.DEFINE_integer("calibration_samples", 8, "Networks the overhead is fitted on.")
    flags.DEFINE_integer("calibration_seed", None, "Seed of the calibration networks "
                         "(default: --seed + 1000; they never equal a validation sample).")
    flags.DEFINE_enum("overhead", "auto", ["auto", "offset", "affine"], "Form of the overhead fit.")
    flags.DEFINE_integer("rounds", 3, "calibrate, validate: timings of each network, in rounds over all "
                         "of them after converting them all; each keeps its median.")
    flags.DEFINE_boolean("recalibrate", False, "validate: fit the overhead again even if the table has one.")
    flags.DEFINE_enum("output", "logits", ["logits", "mask"], "What the timed networks return, as "
                      "export --output: int8 logits, or a uint8 class map at the input size with export's "
                      "default --mask_upsample (part of the overhead).")
    flags.DEFINE_integer("conversions", 3, "Blocks with ops left to the built-in kernels (whose "
                         "XNNPACK delegation depends on the quantization parameters each "
                         "conversion happens to get) are converted and timed this many times; "
                         "the table keeps the median (see LatencyTable.build).")
    flags.DEFINE_integer("warmup", 5, "Untimed invokes before timing.")
    flags.DEFINE_integer("min_runs", 20, "local: timed invokes before a model may stop.")
    flags.DEFINE_integer("max_runs", 500, "local: most timed invokes per model.")
    flags.DEFINE_float("max_seconds", None, "local: stop timing a model after about this long.")
    flags.DEFINE_integer("num_runs", 50, "adb: benchmark_model --num_runs.")
    flags.DEFINE_boolean("progress", True, "Show progress bars.")
    flags.DEFINE_string("latency_cache", None, "Folder of the persistent latency cache, or off (default: "
                        "$MOBILESEG_LATENCY_CACHE, else ~/.cache/mobileseg).")
    flags.DEFINE_string("device", None, "cache clear: only this device's entries (an id from cache list).")


# ---- settings shared by the commands ----------------------------------------------------

@dataclasses.dataclass
class Setting:
    """What the flags say about the space, the networks and the device."""

    space: object
    input_size: tuple[int, int]
    num_classes: int
    quantization: str

    def signatures_of(self, genotype):
        from mobileseg.latency.blocks import signatures_of

        return signatures_of(genotype, self.input_size, self.num_classes, self.quantization)

    def flatbuffer_of(self, genotype) -> bytes:
        from mobileseg.latency.shipped import network_flatbuffer

        return network_flatbuffer(genotype, self.input_size, self.num_classes, self.quantization,
                                  output=FLAGS.output)

    def context(self) -> dict:
        """What a stored network measurement depends on besides its genotype."""
        from mobileseg.deploy.packaging import MASK_UPSAMPLE

        head = {"mask_upsample": MASK_UPSAMPLE} if FLAGS.output == "mask" else {}
        return {"input_size": list(self.input_size), "num_classes": self.num_classes,
                "quantization": self.quantization, "output": FLAGS.output, **head, "packaged": True}


def _setting() -> Setting:
    from mobileseg.arch.space import SearchSpace

    return Setting(SearchSpace.load(FLAGS.space), parse_size(FLAGS.input_size), FLAGS.num_classes,
                   FLAGS.quantization)


def _device(threads: int, clock: str | None = None):
    """(measurer, fingerprint) of the chosen backend at ``threads`` (and ``clock``, default the flag's)."""
    from mobileseg.latency.measurers import device_measurer

    return device_measurer(FLAGS.backend, threads, clock or FLAGS.clock, serial=FLAGS.serial,
                           adb=FLAGS.adb, warmup=FLAGS.warmup, num_runs=FLAGS.num_runs,
                           min_runs=FLAGS.min_runs, max_runs=FLAGS.max_runs,
                           max_seconds=FLAGS.max_seconds)


def _open_table(path: str, fingerprint_of) -> tuple:
    """The table at ``path`` and a measurer for its device (the backend's, checked against it)."""
    from mobileseg.latency.measurers import open_measured_table

    return open_measured_table(path, fingerprint_of, quantization=FLAGS.quantization,
                               threads=FLAGS.threads, threads_given=FLAGS["threads"].present,
                               clock_given=FLAGS.clock if FLAGS["clock"].present else None,
                               backend=FLAGS.backend)


def _command() -> str:
    return "python -m mobileseg.latency " + " ".join(sys.argv[1:])


def _say(message: str) -> None:
    print(message, flush=True)


# ---- build ------------------------------------------------------------------------------

def build() -> int:
    if not FLAGS.out:
        raise ValueError("build needs --out TABLE.json")
    from mobileseg.android.errors import DeviceLost
    from mobileseg.latency.block_model import block_model
    from mobileseg.latency.space_blocks import enumerate_space
    from mobileseg.latency.table import LatencyTable

    setting = _setting()
    started = time.perf_counter()
    found = enumerate_space(setting.space, setting.input_size, setting.num_classes, setting.quantization)
    _say(f"{setting.space.source} at {FLAGS.input_size}: {len(found.signatures)} block signatures "
         f"({found.method}: {found.detail})")
    measurer, fingerprint = _device(FLAGS.threads)
    table = LatencyTable.load_or_create(FLAGS.out, fingerprint, setting.quantization)
    todo = table.to_measure(found.signatures, FLAGS.conversions)
    _say(f"{FLAGS.out}: {len(table)} entries, {len(todo)} to measure"
         + (f" (blocks whose delegation varies: {FLAGS.conversions} conversions each)"
            if FLAGS.conversions > 1 else "") + " "
         f"({FLAGS.backend}, {FLAGS.threads} thread(s), {setting.quantization}, "
         f"{fingerprint.get('clock', 'wall')} clock)")
    try:
        measured = table.build(found.signatures, block_model, measurer, progress=FLAGS.progress,
                               conversions=FLAGS.conversions)
    except DeviceLost as error:
        print(build_interrupted(error, table, found.signatures, FLAGS.conversions), file=sys.stderr)
        return EXIT_DEVICE_LOST
    _say(f"measured {len(measured)} blocks in {time.perf_counter() - started:.1f} s; "
         f"{FLAGS.out} has {len(table)} entries")
    return 0


# ---- calibrate ----------------------------------------------------------------------------

def _validation_samples(setting: Setting):
    from mobileseg.latency.validation import draw_networks

    return draw_networks(setting.space, FLAGS.samples, FLAGS.seed, setting.input_size,
                         setting.num_classes)


def _calibration_networks(setting: Setting, model, exclude: set[str]) -> tuple[int, list, list[str]]:
    """(seed, genotypes, names) of the networks the overhead is fitted on."""
    from mobileseg.latency.validation import calibration_networks

    seed = FLAGS.calibration_seed if FLAGS.calibration_seed is not None else FLAGS.seed + 1000
    genotypes = calibration_networks(setting.space, model, FLAGS.calibration_samples, seed,
                                     setting.input_size, setting.num_classes, exclude)
    return seed, genotypes, [f"{setting.space.tree.get('name', 'space')}_calibration_s{seed}_{i:02d}"
                             for i in range(len(genotypes))]


def _measure(setting: Setting, genotypes, names, folder: Path, measurer, desc: str) -> list[dict]:
    from mobileseg.latency.validation import NetworkStore, measure_networks

    return measure_networks(genotypes, NetworkStore(folder), setting.flatbuffer_of, measurer, desc, names,
                            FLAGS.progress, setting.context(), rounds=FLAGS.rounds,
                            fresh_process=FLAGS.backend == "local")


def _fit(setting: Setting, model, seed: int, genotypes, records: list[dict]) -> dict:
    """Fit and save the table's overhead on measured calibration networks; what was done, for the report."""
    from mobileseg.latency.predictor import calibrate_overhead
    from mobileseg.run.fingerprint import genotype_key

    measured = {genotype_key(g): r["measured_ms"] for g, r in zip(genotypes, records, strict=True)}
    overhead = calibrate_overhead(model, genotypes, lambda g: measured[genotype_key(g)],
                                  kind=FLAGS.overhead, save=False)
    overhead = dataclasses.replace(overhead, reason=(
        f"{len(genotypes)} networks of {setting.space.source} at {FLAGS.input_size} "
        f"(seed {seed}, spanning the predicted range); {overhead.reason}"))
    model.table.overhead = overhead
    model.table.save()
    _say(f"overhead: {overhead.kind}, scale {overhead.scale:.4f}, offset {overhead.offset_ms:.3f} ms, "
         f"residual RMS {overhead.rmse_ms:.3f} ms on {len(genotypes)} networks ({overhead.reason})")
    return {"seed": seed, "networks": [
        {"name": r["name"], "blocks_ms": model.blocks_ms(g), "measured_ms": r["measured_ms"]}
        for g, r in zip(genotypes, records, strict=True)],
        "overhead": overhead.to_dict(),
        "seconds": round(sum(r["build_convert_s"] + r.get("measure_s", 0.0) for r in records), 1)}


def _model(setting: Setting, table, measurer):
    from mobileseg.latency.block_model import block_model
    from mobileseg.latency.predictor import MeasuringLatencyModel

    return MeasuringLatencyModel(table, setting.signatures_of, block_model, measurer,
                                 progress=FLAGS.progress, conversions=FLAGS.conversions)


def calibrate() -> int:
    from mobileseg.run.fingerprint import genotype_key

    if not FLAGS.table:
        raise ValueError("calibrate needs --table TABLE.json")
    if not Path(FLAGS.table).is_file():
        raise FileNotFoundError(f"no latency table {FLAGS.table}: build it first "
                                "(python -m mobileseg.latency build ... --out TABLE.json)")
    setting = _setting()
    table, measurer, _ = _open_table(FLAGS.table, _device)
    samples, _ = _validation_samples(setting)
    folder = Path(FLAGS.out) if FLAGS.out else Path(FLAGS.table).with_suffix("").with_name(
        Path(FLAGS.table).stem + "_calibration")
    model = _model(setting, table, measurer)
    seed, genotypes, names = _calibration_networks(setting, model, {genotype_key(g) for g in samples})
    _fit(setting, model, seed, genotypes,
         _measure(setting, genotypes, names, folder, measurer, "calibration networks"))
    return 0


# ---- validate ---------------------------------------------------------------------------

def validate() -> int:
    import numpy as np

    from mobileseg.latency.validation import (ANCHOR, TARGET, meets_target, rounds_spearman_rho, scatter_png,
                                              summarize)
    from mobileseg.run.fingerprint import genotype_key
    from mobileseg.latency.validation_report import by_op, validation_rows, worst

    if not FLAGS.table or not FLAGS.out:
        raise ValueError("validate needs --table TABLE.json and --out DIR")
    if not Path(FLAGS.table).is_file():
        raise FileNotFoundError(f"no latency table {FLAGS.table}: build it first "
                                "(python -m mobileseg.latency build ... --out TABLE.json)")
    started = time.perf_counter()
    load_start = os.getloadavg()
    out = Path(FLAGS.out)
    setting = _setting()
    table, measurer, fingerprint = _open_table(FLAGS.table, _device)
    model = _model(setting, table, measurer)
    samples, skipped = _validation_samples(setting)
    timings = {"sampling_s": round(time.perf_counter() - started, 1)}
    before = len(table)
    missing_started = time.perf_counter()
    model.measure_missing(samples)
    timings["missing_blocks_s"] = round(time.perf_counter() - missing_started, 1)
    calibration = None
    seed, fit_on, fit_names = (_calibration_networks(setting, model, {genotype_key(g) for g in samples})
                               if table.overhead is None or FLAGS.recalibrate else (None, [], []))
    name = setting.space.tree.get("name", "space")
    # calibration and validation networks are timed together, in the same rounds (see measure_networks)
    records = _measure(setting, [*fit_on, *samples],
                       [*fit_names, *(f"{name}_s{FLAGS.seed}_{i:03d}" for i in range(len(samples)))],
                       out / "networks", measurer, "networks")
    if fit_on:
        calibration = _fit(setting, model, seed, fit_on, records[:len(fit_on)])
        timings["calibrate_s"] = calibration["seconds"]
    records = [{**record, "index": index} for index, record in enumerate(records[len(fit_on):])]
    rows = validation_rows(samples, records, model, setting.signatures_of)
    predicted = [row["predicted_ms"] for row in rows]
    measured = [row["measured_ms"] for row in rows]
    summary = summarize(predicted, measured)
    summary.update(rounds_spearman_rho=rounds_spearman_rho([row["round_ms"] or [] for row in rows]), target=TARGET,
                   target_met=meets_target(summary), anchor=ANCHOR)
    timings.update(samples_build_convert_s=round(sum(r["build_convert_s"] for r in rows), 1),
                   samples_measure_s=round(sum(r["measure_s"] for r in rows), 1),
                   this_run_s=round(time.perf_counter() - started, 1))
    overhead = table.overhead
    result = {
        "command": _command(), "versions": versions(), "device": fingerprint,
        "space": FLAGS.space, "input_size": list(setting.input_size),
        "num_classes": setting.num_classes, "quantization": setting.quantization,
        "output": FLAGS.output, "seed": FLAGS.seed,
        "clock": fingerprint.get("clock", "wall"),
        "skipped_unbuildable_draws": skipped,
        "table": {"path": FLAGS.table, "entries": len(table), "measured_now": len(table) - before},
        "overhead": overhead.to_dict() if overhead else None, "calibration": calibration,
        "summary": summary, "by_op": by_op(rows), "worst": worst(rows),
        "timings_s": timings,
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        "samples": rows,
    }
    from mobileseg.atomic_write import write_atomic

    write_atomic(out / "validation.json", json.dumps(result, indent=1) + "\n")
    title = (f"{Path(FLAGS.space).name} at {FLAGS.input_size}, {setting.quantization}, "
             f"{fingerprint.get('threads')} thread(s), {fingerprint.get('clock', 'wall')} clock, "
             f"{len(rows)} networks\n"
             f"within +-10%: {summary['within_10pct']:.0%}, Spearman rho "
             f"{summary['spearman_rho'] if summary['spearman_rho'] is not None else float('nan'):.3f}, "
             f"RMSE {summary['rmse_ms']:.2f} ms")
    scatter_png(out / "scatter.png", predicted, measured, title)
    _say(f"{len(rows)} networks: {summary['within_10pct']:.1%} within +-10%, Spearman rho "
         f"{summary['spearman_rho'] if summary['spearman_rho'] is not None else float('nan'):.3f}, "
         f"(its timing rounds agree at rho {summary['rounds_spearman_rho'] or float('nan'):.3f}), "
         f"RMSE {summary['rmse_ms']:.3f} ms, MAPE {summary['mape_pct']:.2f}%, "
         f"mean error {summary['mean_error_pct']:+.2f}% (measured {np.min(measured):.1f}-"
         f"{np.max(measured):.1f} ms); wrote {out / 'validation.json'} and {out / 'scatter.png'}")
    return 0


def main(argv: list[str]) -> int:
    import warnings

    # the TFLite converter's int8 calibration still uses tf.lite.Interpreter internally
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
    commands = argv[1:]
    from absl import flags

    from mobileseg.latency import cache

    cache.use_folder(flags.FLAGS.latency_cache)
    if commands[:1] == ["cache"]:
        if len(commands) != 2 or commands[1] not in CACHE_ACTIONS:
            print(f"usage: python -m mobileseg.latency cache {{{','.join(CACHE_ACTIONS)}}} [--device ID]; "
                  f"got {' '.join(commands)}", file=sys.stderr)
            return 2
        try:
            return cache.command(commands[1], flags.FLAGS.device)
        except cache.CacheError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    if len(commands) != 1 or commands[0] not in COMMANDS or not flags.FLAGS.space:
        print(f"usage: python -m mobileseg.latency {{{','.join(COMMANDS)}}} --space SPACE.yaml ... or "
              f"cache {{{','.join(CACHE_ACTIONS)}}}; "
              f"got {' '.join(commands) or 'no command'}", file=sys.stderr)
        return 2
    from mobileseg.android.errors import AndroidBenchError, DeviceLost
    from mobileseg.latency.table_errors import MissingBlockError

    try:
        return {"build": build, "calibrate": calibrate, "validate": validate}[commands[0]]()
    except DeviceLost as error:
        print(f"error: {error}\nEvery block and network measured so far is saved; reconnect the "
              "phone and run the same command again to go on.", file=sys.stderr)
        return EXIT_DEVICE_LOST
    # (a GenotypeError, a malformed space, is a ValueError)
    except (ValueError, FileNotFoundError, MissingBlockError, AndroidBenchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from mobileseg.console import quiet_native_logs

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
