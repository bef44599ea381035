"""Benchmark: a latency validation's networks timed again in a fresh process, without TensorFlow (issue 22).

``python -m mobileseg.latency validate`` converts its networks with TensorFlow, then times them in that same
process. At 184x240 on this machine (2 cores, load ~10) the same files timed in fresh processes that never
loaded TensorFlow measured 6-17% faster (median over the networks) and spread less between rounds
(README, Latency predictor). This script re-times the TFLite files a validation kept (``--validation DIR``:
its ``validation.json`` and ``networks/``) in this process, before anything imports TensorFlow, in ``--rounds``
rounds (each in its own seeded random order), keeps each network's median round, fits the overhead on the
validation's calibration networks only (Theil-Sen, as ``calibrate`` does: never on the validation samples) and
scores the samples. Writes ``benchmarks/results/NAME.json`` and ``.png`` and adds its row to ``by_size`` in
``latency_predictor.json``.

``--statistic min`` keeps each network's fastest round instead of its median (for calibration and samples alike):
interference from other tenants of the host only ever adds time. ``--rounds_from RESULT.json`` scores the rounds an
earlier re-timing recorded (its ``round_ms``, with its timing seconds and load) instead of timing again, and
``--notime`` the rounds ``validate`` itself timed (in its network records), so both statistics are compared on the
same timings.

Usage:
    python benchmarks/latency_retime.py --validation runs/latency_184x240_v2/validation \\
        --table runs/latency_184x240_v2/latency_table.json --name latency_predictor_184x240_s2026_fresh_process
    python benchmarks/latency_retime.py --validation runs/latency_360x480/validation \\
        --table runs/latency_360x480/latency_table.json --statistic min \\
        --rounds_from benchmarks/results/latency_predictor_360x480_s2028_quiet.json --name latency_predictor_360x480_s2028_quiet_min
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FLAGS = flags.FLAGS


def define_flags() -> None:
    """Declare the flags (at start-up only)."""
    flags.DEFINE_string("validation", None, "Folder written by python -m mobileseg.latency validate.")
    flags.DEFINE_string("table", None, "Its latency table.")
    flags.DEFINE_integer("rounds", 3, "Timings of each network (rounds over all of them); --statistic picks one.")
    flags.DEFINE_float("max_seconds", 10.0, "Longest timing of one network in one round.")
    flags.DEFINE_string("name", None, "Result file name (without .json).")
    flags.DEFINE_enum("statistic", "median", sorted(STATISTICS), "Which of a network's rounds is its latency.")
    flags.DEFINE_string("rounds_from", None, "An earlier re-timing's result: score its rounds, time nothing.")
    flags.DEFINE_boolean("time", True, "--notime: score the rounds validate itself timed (its network records' "
                         "round_ms), time nothing.")


STATISTICS = {"median": lambda rounds: float(np.median(rounds)), "min": lambda rounds: float(np.min(rounds))}


def earlier_rounds(result_path: Path, stems: list[str]) -> tuple[dict[str, list[float]], dict]:
    """The ``round_ms`` an earlier re-timing recorded for each of ``stems`` (its samples and calibration networks),
    and how and where those rounds were timed: ``{"tensorflow_loaded", "timing_seconds", "load_average", "machine"}``
    (``machine`` None for a result from before it was recorded).

    Raises:
        ValueError: naming the file, if it is not a re-timing result or does not time every one of ``stems``.
    """
    try:
        result = json.loads(result_path.read_text())
        rounds = {row["stem"]: row["round_ms"] for row in [*result["samples"], *result["calibration_networks"]]}
        timing = {"tensorflow_loaded": result["tensorflow_loaded_while_timing"],
                  "timing_seconds": result["timing_seconds"], "load_average": result["load_average"],
                  "machine": result.get("machine")}
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{result_path}: cannot be read as JSON ({error})") from error
    except (KeyError, TypeError) as error:
        raise ValueError(f"{result_path}: not a latency_retime result (no {error})") from error
    missing = sorted(set(stems) - set(rounds))
    if missing:
        raise ValueError(f"{result_path}: no rounds for {len(missing)} of the validation's networks, e.g. {missing[0]}")
    return {stem: rounds[stem] for stem in stems}, timing


def validate_rounds(folder: Path, records: dict[str, dict]) -> dict[str, list[float]]:
    """The ``round_ms`` ``validate`` recorded in each network record of ``folder`` (keyed by file stem).

    Raises:
        ValueError: naming the folder and a record, if a network was converted but never timed.
    """
    untimed = [stem for stem, record in records.items() if not record.get("round_ms")]
    if untimed:
        raise ValueError(f"{folder}: {len(untimed)} network records without timing rounds, e.g. {untimed[0]}.json")
    return {stem: record["round_ms"] for stem, record in records.items()}


def main(argv: list[str]) -> int:
    del argv
    if not (FLAGS.validation and FLAGS.table and FLAGS.name):
        print("error: --validation, --table and --name are required", file=sys.stderr)
        return 2
    if FLAGS.rounds_from and not FLAGS.time:
        print("error: --rounds_from and --notime each choose the rounds to score: give one", file=sys.stderr)
        return 2
    folder = Path(FLAGS.validation)
    try:
        report = json.loads((folder / "validation.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"error: {folder / 'validation.json'}: not a readable validation report ({error})", file=sys.stderr)
        return 1
    records = {path.stem: json.loads(path.read_text()) for path in sorted((folder / "networks").glob("network_*.json"))}
    paths = [folder / "networks" / f"{stem}.tflite" for stem in records]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"error: {folder}: networks without their TFLite file (measured before they were kept): "
              f"{', '.join(missing[:3])}", file=sys.stderr)
        return 1
    tensorflow_loaded = "tensorflow" in sys.modules
    try:
        timed_on = None  # the machine whose rounds are scored, where known
        if not FLAGS.time:
            timed = validate_rounds(folder, records)
            tensorflow_loaded, timing_s, load = None, report["timings_s"].get("samples_measure_s"), report["load_average"]
        elif FLAGS.rounds_from:
            timed, earlier = earlier_rounds(Path(FLAGS.rounds_from), list(records))
            tensorflow_loaded, timing_s, load = (earlier["tensorflow_loaded"], earlier["timing_seconds"],
                                                 earlier["load_average"])
            timed_on = earlier["machine"]
        else:
            from mobileseg.latency.device import local_fingerprint

            load = {"start": [round(x, 2) for x in os.getloadavg()]}
            timed_on = local_fingerprint(1, clock=report["clock"])
            started = time.perf_counter()
            timed = time_networks(paths, report["clock"])
            timing_s = time.perf_counter() - started
            load["end"] = [round(x, 2) for x in os.getloadavg()]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    statistic = STATISTICS[FLAGS.statistic]

    from latency_predictor import record_by_size
    from mobileseg.arch import schema_io
    from mobileseg.latency.blocks import signatures_of
    from mobileseg.latency.overhead import fit_overhead
    from mobileseg.latency.predictor import TableLatencyModel
    from mobileseg.latency.table import LatencyTable
    from mobileseg.latency.validation import error_pct, scatter_png, summarize
    from mobileseg.run.fingerprint import genotype_key

    size, classes, quantization = tuple(report["input_size"]), report["num_classes"], report["quantization"]
    model = TableLatencyModel(LatencyTable.load(FLAGS.table), lambda g: signatures_of(g, size, classes, quantization))
    names = {genotype_key(schema_io.from_dict(row["genotype"])): row["name"] for row in report["samples"]}
    networks = []
    for stem, record in records.items():
        genotype = schema_io.from_dict(record["genotype"])
        networks.append({"stem": stem, "name": names.get(genotype_key(genotype)),
                         "blocks_ms": model.blocks_ms(genotype), "round_ms": timed[stem],
                         "measured_ms": statistic(timed[stem]),
                         "validate_measured_ms": record.get("measured_ms")})
    calibration = [n for n in networks if n["name"] is None]
    samples = sorted((n for n in networks if n["name"] is not None), key=lambda n: n["name"])
    overhead = fit_overhead([n["blocks_ms"] for n in calibration], [n["measured_ms"] for n in calibration])
    for n in samples:
        n["predicted_ms"] = overhead.apply(n["blocks_ms"])
        n["error_pct"] = error_pct(n["predicted_ms"], n["measured_ms"])
    predicted, measured = [n["predicted_ms"] for n in samples], [n["measured_ms"] for n in samples]
    summary = summarize(predicted, measured)
    ratio = np.median([n["measured_ms"] / n["validate_measured_ms"] for n in networks])
    result = {
        "benchmark": "latency predictor, networks re-timed in a fresh process without TensorFlow",
        "command": "python benchmarks/latency_retime.py " + " ".join(sys.argv[1:]),
        "commands": {"validate": report["command"]}, "validation": str(folder), "table": FLAGS.table,
        "tensorflow_loaded_while_timing": tensorflow_loaded, "rounds": len(next(iter(timed.values()))),
        "statistic": FLAGS.statistic, "rounds_from": FLAGS.rounds_from, "clock": report["clock"],
        "timing_seconds": round(timing_s, 1), "load_average": load,
        "machine": timed_on,
        "calibration": {"networks": len(calibration), "seed": (report.get("calibration") or {}).get("seed")},
        "overhead": overhead.to_dict(), "summary": summary,
        "median_ratio_to_validate_process": round(float(ratio), 4),
        "samples": samples, "calibration_networks": calibration,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{FLAGS.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    record_by_size(result, f"{FLAGS.name}.json")
    scatter_png(RESULTS / f"{FLAGS.name}.png", predicted, measured,
                f"{report['space']} at {size[0]}x{size[1]}, re-timed in a fresh process, {result['rounds']} rounds' "
                f"{FLAGS.statistic}, "
                f"{len(samples)} networks\nwithin +-10%: {summary['within_10pct']:.0%}, Spearman rho "
                f"{summary['spearman_rho']:.3f}")
    print(f"{len(samples)} networks: {summary['within_10pct']:.0%} within +-10%, {summary['within_5pct']:.0%} within "
          f"+-5%, rho {summary['spearman_rho']:.3f}, MAPE {summary['mape_pct']:.1f}%; fresh process / validate "
          f"process {ratio:.3f} -> {RESULTS / (FLAGS.name + '.json')}")
    return 0


def time_networks(paths: list[Path], clock: str) -> dict[str, list[float]]:
    """Each file's median invoke time (ms) in each of ``--rounds`` rounds, timed in this process."""
    import functools

    from mobileseg.latency.validation import time_rounds
    from mobileseg.litert_measure import measure_tflite

    measurer = functools.partial(measure_tflite, threads=1, clock=clock, max_seconds=FLAGS.max_seconds)
    records_by_file, _ = time_rounds(measurer, [str(path) for path in paths], FLAGS.rounds)
    return {path.stem: [record.median_ms for record in rounds] for path, rounds in zip(paths, records_by_file, strict=True)}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
