"""Benchmark (issue 7, item 4): QAT vs PTQ int8 against fp32 on CamVid-trained networks.

For every ``--run_dir`` (a run folder of ``python -m mobileseg.train`` on CamVid: its
``model.keras`` and ``config.yaml``; nothing is trained here but the quantization-aware
fine-tuning): the model is copied into ``--work_dir/NAME`` (the training run is left as
it is), then one ``python -m mobileseg.export`` exports it with the ``cpu-int8`` profile
(uint8 image in, uint8 class map out), the fp32 file, post-training int8 (the baseline)
and quantization-aware int8 after ``--qat_epochs``, and verifies every file: mIoU on
``--split`` through `mobileseg.evaluate`, latency at 1 thread timed interleaved (the
invoking thread's CPU time, ``clock: thread_cpu``: this 2-core machine is shared, and
wall time under load measures the neighbours), XNNPACK partitions. The issue's targets are then checked on those figures:

- QAT int8 mIoU within 0.5 point of fp32 (the PTQ gap reported beside it);
- int8 at least 1.8x faster than fp32 on this CPU at 1 thread;
- exactly one XNNPACK partition.

Writes ``benchmarks/results/export_camvid.json``: the exact commands, settings,
versions, machine, load averages, and per network the files' figures and the targets
met or not. The export's own ``report.json`` stays in ``--work_dir/NAME/export/``.

Example (the CamVid runs of benchmarks/train_references_camvid.py):
    python benchmarks/export_camvid.py --qat_epochs 2 \\
        --run_dir runs/train_references_camvid/seaformer_tiny \\
        --run_dir runs/train_references_camvid/mobilenetv3_small_lraspp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"max_qat_gap_points": 0.5, "min_speedup_vs_fp32": 1.8, "partitions": 1}


def export_command(work: Path, args) -> list[str]:
    """The ``mobileseg.export`` command run for one network."""
    command = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(work), "--target", "cpu-int8", "--fp32",
               "--ptq", "--qat_epochs", str(args.qat_epochs), "--batch_size", str(args.batch_size),
               "--learning_rate", str(args.learning_rate), "--distill_weight", str(args.distill_weight),
               "--calibration_images", str(args.calibration_images),
               "--split", args.split, "--seed", str(args.seed)]
    if args.steps_per_epoch:
        command += ["--steps_per_epoch", str(args.steps_per_epoch)]
    if args.eval_images:
        command += ["--eval_images", str(args.eval_images)]
    if args.data:
        command += ["--data", args.data]
    return command


def summarize(report: dict) -> dict:
    """The figures of one export report and the targets they meet."""
    files = {Path(entry["file"]).name: entry for entry in report["files"]}
    fp32, qat, ptq = (files.get(name, {}) for name in ("model_fp32.tflite", "model_int8.tflite",
                                                        "model_int8_ptq.tflite"))

    def figures(entry: dict) -> dict:
        keys = ("miou", "latency_ms", "clock", "speedup_vs_fp32", "xnnpack_partitions", "fallback_ops", "size_mb",
                "builtin_only", "method", "error")
        return {key: entry.get(key) for key in keys if key in entry}

    def gap(entry: dict):
        if entry.get("miou") is None or fp32.get("miou") is None:
            return None
        return round(100.0 * (fp32["miou"] - entry["miou"]), 3)

    qat_gap, ptq_gap = gap(qat), gap(ptq)
    speedup = qat.get("speedup_vs_fp32")
    partitions = qat.get("xnnpack_partitions")
    return {
        "float_keras_miou": report["float"].get("miou"), "qat_keras_miou": report["float"].get("qat_keras_miou"),
        "fp32": figures(fp32), "qat_int8": figures(qat), "ptq_int8": figures(ptq),
        "qat_gap_points": qat_gap, "ptq_gap_points": ptq_gap,
        "targets": {
            "qat_within_0.5_point": qat_gap is not None and qat_gap <= TARGETS["max_qat_gap_points"],
            "int8_1.8x_faster": speedup is not None and speedup >= TARGETS["min_speedup_vs_fp32"],
            "one_xnnpack_partition": partitions == TARGETS["partitions"],
        },
        "qat_history": report["qat"].get("history"), "qat_coverage": qat.get("qat"),
        "export_seconds": report.get("seconds"), "profile_failures": report.get("failed_checks"),
    }


def run_one(run_dir: Path, args) -> dict:
    """Copy one trained network, export and verify it; return its summary."""
    name = run_dir.name
    work = args.work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    for file in ("model.keras", "config.yaml"):
        if (run_dir / file).is_file():
            shutil.copy2(run_dir / file, work / file)
    command = export_command(work, args)
    log = work / "export.log"
    started = time.time()
    with log.open("w") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        code = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    report_path = work / "export" / "report.json"
    if code == 2 or not report_path.is_file():
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{tail}")
    summary = summarize(json.loads(report_path.read_text()))
    summary.update(network=name, source_run=str(run_dir), command=" ".join(command), exit_code=code,
                   wall_seconds=round(time.time() - started), report=str(report_path))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", action="append", type=Path, required=True,
                        help="a CamVid-trained run folder (model.keras, config.yaml); repeat for several")
    parser.add_argument("--qat_epochs", type=int, default=2)
    parser.add_argument("--steps_per_epoch", type=int, default=0, help="0: whole epochs")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=2e-5)
    parser.add_argument("--distill_weight", type=float, default=1.0)
    parser.add_argument("--calibration_images", type=int, default=64)
    parser.add_argument("--split", default="test")
    parser.add_argument("--eval_images", type=int, default=0, help="0: the whole split")
    parser.add_argument("--data", default="", help="KIND:PATH (default: the run's config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "export_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export_camvid.json")
    args = parser.parse_args()

    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    load_before, started = os.getloadavg(), time.time()
    results = [run_one(run_dir.resolve(), args) for run_dir in args.run_dir]
    result = {"command": " ".join(["python", "benchmarks/export_camvid.py", *sys.argv[1:]]),
              "settings": {key: str(value) for key, value in vars(args).items()}, "targets": TARGETS,
              "environment": environment(), "load_average_before_after": [load_before, os.getloadavg()],
              "wall_seconds": round(time.time() - started), "results": results}
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    for r in results:
        qat, ptq, fp32 = r["qat_int8"], r["ptq_int8"], r["fp32"]
        print(f"{r['network']}: fp32 mIoU {100 * (fp32.get('miou') or 0):.2f} {fp32.get('latency_ms')} ms | "
              f"QAT int8 {100 * (qat.get('miou') or 0):.2f} (gap {r['qat_gap_points']}) {qat.get('latency_ms')} ms "
              f"x{qat.get('speedup_vs_fp32')} partitions {qat.get('xnnpack_partitions')} | PTQ int8 "
              f"{100 * (ptq.get('miou') or 0):.2f} (gap {r['ptq_gap_points']}) | targets {r['targets']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
