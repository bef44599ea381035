"""``python -m mobileseg.zoo``: the reference networks side by side.

For every genotype in ``search_space/references/`` (or ``--arch`` files): parameters,
multiply-accumulates, and fp32 and int8 TFLite latency of the files export would write
(`mobileseg.latency.shipped.shipped_flatbuffer`: packaged, a uint8 image in) measured with LiteRT on
this machine (XNNPACK, ``--threads`` threads, default 1), with the number of
XNNPACK partitions of the int8 model. The weights are random: latency does not
depend on them. ``--json_out FILE`` also writes the table as JSON (atomically).

Example:
    python -m mobileseg.zoo --input_size 360x480 --num_classes 12
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags

from mobileseg.cli_flags import parse_size
from mobileseg.search.reference_choice import REFERENCES, reference_files

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    flags.DEFINE_multi_string("arch", None, "Genotype files (default: every file in search_space/references).")
    flags.DEFINE_string("input_size", "360x480", "Input HEIGHTxWIDTH.")
    flags.DEFINE_integer("num_classes", 12, "Number of output classes.")
    flags.DEFINE_integer("threads", 1, "LiteRT threads.")
    flags.DEFINE_enum("clock", "wall", ["wall", "thread_cpu"], "Latency clock: wall, or the invoking thread's CPU "
                      "time (idle-core latency on a shared machine; needs --threads 1).")
    flags.DEFINE_string("json_out", None, "Also write the table to this JSON file.")


def profile(path: Path, num_classes: int, input_size: tuple[int, int], threads: int = 1,
            max_seconds: float = 20.0, clock: str = "wall") -> dict:
    """Params, MACs and fp32/int8 LiteRT latency of one genotype file.

    Example:
        >>> row = profile(REFERENCES / "mobilenetv3_small_lraspp.yaml", 12, (64, 64), max_seconds=0.5)
        >>> row["name"], row["int8"]["xnnpack_partitions"] >= 1, row["params"] > 1e5
        ('mobilenetv3_small_lraspp', True, True)
    """
    from mobileseg.arch import builder, complexity, schema_io
    from mobileseg.latency.shipped import shipped_flatbuffer
    from mobileseg.litert_measure import measure_interleaved

    genotype = schema_io.load(path)
    model = builder.build_model(genotype, num_classes, input_size, batch_size=1)
    params, macs = complexity.total(complexity.layer_costs(model))
    flatbuffers = {mode: shipped_flatbuffer(model, mode) for mode in ("fp32", "int8")}
    records = measure_interleaved(list(flatbuffers.values()), threads, names=list(flatbuffers),
                                  max_seconds=max_seconds, clock=clock)
    row = {"name": genotype.name, "file": path.name, "params": params, "macs": macs}
    for mode, record in zip(flatbuffers, records, strict=True):
        row[mode] = {"median_ms": record.median_ms, "p90_ms": record.p90_ms,
                     "xnnpack_partitions": record.xnnpack_partitions,
                     "fallback_ops": sorted(set(record.fallback_ops)),
                     "size_kb": len(flatbuffers[mode]) / 1024}
    return row


def format_rows(rows: list[dict], input_size: tuple[int, int], num_classes: int, threads: int,
                clock: str = "wall") -> str:
    """A markdown table of ``profile`` rows."""
    lines = [f"Reference zoo at {input_size[0]}x{input_size[1]}, {num_classes} classes, "
             f"LiteRT {threads} thread(s), XNNPACK, {clock} clock, random weights",
             "", "| network | params (M) | MACs (G) | fp32 ms | int8 ms | int8/fp32 | int8 partitions |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        fp32, int8 = row["fp32"]["median_ms"], row["int8"]["median_ms"]
        lines.append(f"| {row['name']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.2f} | {fp32:.1f} | "
                     f"{int8:.1f} | {int8 / fp32:.2f} | {row['int8']['xnnpack_partitions']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from mobileseg.atomic_write import write_atomic
    from mobileseg.latency.device import local_fingerprint

    del argv
    input_size = parse_size(FLAGS.input_size)
    files = [Path(p) for p in FLAGS.arch] if FLAGS.arch else reference_files()
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        print(f"error: no such genotype file: {', '.join(missing)}", file=sys.stderr)
        return 1
    if FLAGS.clock == "thread_cpu" and FLAGS.threads != 1:
        print(f"error: --clock thread_cpu times one thread: give --threads 1, not {FLAGS.threads}", file=sys.stderr)
        return 1
    started, load_before = time.time(), os.getloadavg()
    rows = []
    for path in tqdm(files, desc="build, convert, time", unit="net"):
        rows.append(profile(path, FLAGS.num_classes, input_size, FLAGS.threads, clock=FLAGS.clock))
    print(format_rows(rows, input_size, FLAGS.num_classes, FLAGS.threads, FLAGS.clock))
    print(f"\n{len(rows)} networks in {time.time() - started:.0f} s")
    if FLAGS.json_out:
        result = {"command": "python -m mobileseg.zoo " + " ".join(sys.argv[1:]),
                  "device": local_fingerprint(FLAGS.threads), "input_size": list(input_size),
                  "num_classes": FLAGS.num_classes, "clock": FLAGS.clock, "seconds": round(time.time() - started),
                  "load_average_before_after": [load_before, os.getloadavg()], "rows": rows}
        write_atomic(FLAGS.json_out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from mobileseg.console import quiet_native_logs

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
