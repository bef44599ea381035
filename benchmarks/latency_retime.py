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

Usage:
    python benchmarks/latency_retime.py --validation runs/latency_184x240_v2/validation \\
        --table runs/latency_184x240_v2/latency_table.json --name latency_predictor_184x240_s2026_fresh_process
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FLAGS = flags.FLAGS


def define_flags() -> None:
    """Declare the flags (at start-up only)."""
    flags.DEFINE_string("validation", None, "Folder written by python -m mobileseg.latency validate.")
    flags.DEFINE_string("table", None, "Its latency table.")
    flags.DEFINE_integer("rounds", 3, "Timings of each network (rounds over all of them); the median is kept.")
    flags.DEFINE_float("max_seconds", 10.0, "Longest timing of one network in one round.")
    flags.DEFINE_string("name", None, "Result file name (without .json).")


def main(argv: list[str]) -> int:
    del argv
    if not (FLAGS.validation and FLAGS.table and FLAGS.name):
        print("error: --validation, --table and --name are required", file=sys.stderr)
        return 2
    folder = Path(FLAGS.validation)
    report = json.loads((folder / "validation.json").read_text())
    records = {path.stem: json.loads(path.read_text()) for path in sorted((folder / "networks").glob("network_*.json"))}
    paths = [folder / "networks" / f"{stem}.tflite" for stem in records]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"error: {folder}: networks without their TFLite file (measured before they were kept): "
              f"{', '.join(missing[:3])}", file=sys.stderr)
        return 1
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    started = time.perf_counter()
    import functools

    from mobileseg.latency.validation import time_rounds
    from mobileseg.litert_measure import measure_tflite

    tensorflow_loaded = "tensorflow" in sys.modules
    measurer = functools.partial(measure_tflite, threads=1, clock=report["clock"], max_seconds=FLAGS.max_seconds)
    records_by_file, _ = time_rounds(measurer, [str(path) for path in paths], FLAGS.rounds)
    timed = {path.stem: [record.median_ms for record in rounds]
             for path, rounds in zip(paths, records_by_file, strict=True)}
    timing_s = time.perf_counter() - started
    load["end"] = [round(x, 2) for x in os.getloadavg()]

    import numpy as np

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
                         "measured_ms": float(np.median(timed[stem])),
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
        "tensorflow_loaded_while_timing": tensorflow_loaded, "rounds": FLAGS.rounds, "clock": report["clock"],
        "timing_seconds": round(timing_s, 1), "load_average": load,
        "calibration": {"networks": len(calibration), "seed": (report.get("calibration") or {}).get("seed")},
        "overhead": overhead.to_dict(), "summary": summary,
        "median_ratio_to_validate_process": round(float(ratio), 4),
        "samples": samples, "calibration_networks": calibration,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{FLAGS.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    record_by_size(result, f"{FLAGS.name}.json")
    scatter_png(RESULTS / f"{FLAGS.name}.png", predicted, measured,
                f"{report['space']} at {size[0]}x{size[1]}, re-timed in a fresh process, {FLAGS.rounds} rounds, "
                f"{len(samples)} networks\nwithin +-10%: {summary['within_10pct']:.0%}, Spearman rho "
                f"{summary['spearman_rho']:.3f}")
    print(f"{len(samples)} networks: {summary['within_10pct']:.0%} within +-10%, {summary['within_5pct']:.0%} within "
          f"+-5%, rho {summary['spearman_rho']:.3f}, MAPE {summary['mape_pct']:.1f}%; fresh process / validate "
          f"process {ratio:.3f} -> {RESULTS / (FLAGS.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
