"""Benchmark (issue 15): a trained CamVid network with a 7x7 depthwise cell, exported before and after the row bands.

XNNPACK runs a 7x7 depthwise convolution as a grouped IGEMM, 20-100x slower than its depthwise kernels;
`mobileseg.quant.wide_depthwise` rewrites it as row bands of at most 5x5 taps at export. For one trained run
folder (``model.keras`` and ``config.yaml``), copied into ``--work_dir/NAME/before`` and ``.../now`` so the run
itself is left as it was:

1. ``python -m mobileseg.export --int8 --fp32 --qat_epochs N`` in each copy, ``before`` with the code of
   ``--before`` (a git worktree of the commit before the bands: ``git worktree add DIR COMMIT``), ``now``
   with this checkout's; the same seed, so the two differ only in the bands;
2. ``python -m mobileseg.evaluate`` of every file on val and test;
3. the four files timed in ``--rounds`` interleaved rounds (LiteRT, 1 thread, thread CPU clock), each
   file's median round kept.

Writes ``--out`` (default ``benchmarks/results/wide_depthwise_camvid.json``): ``{"rows": [{"code", "mode",
"file", "val_miou", "test_miou", "ms", "round_ms", "xnnpack_partitions", "fallback_ops", "depthwise_ops"}],
"run", "before_commit", "commands", "versions", "machine", "load_average"}``. Every export and evaluation is
skipped when its output exists, so a killed run continues.

Example:
    git worktree add /tmp/before f3494ec
    python benchmarks/wide_depthwise_camvid.py --before /tmp/before \\
        --run runs/search_vs_random_camvid/trained/random_10.56ms_seed0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from camvid_runs import CAMVID, ROOT, repository_path, run, versions
from mask_head_camvid import miou, time_rows

CODES = ("before", "now")
RUN_FILES = ("model.keras", "config.yaml")


def export_command(run_dir: Path, data: str, qat_epochs: int) -> list[str]:
    """The export of ``run_dir`` into ``run_dir/export`` (int8 with QAT and fp32, no evaluation)."""
    return [sys.executable, "-m", "mobileseg.export", "--run_dir", str(run_dir), "--data", data, "--int8", "--fp32",
            "--qat_epochs", str(qat_epochs), "--noevaluate", "--seed", "0", "--out_dir", str(run_dir / "export")]


def depthwise_ops(path: Path) -> int:
    """How many DEPTHWISE_CONV_2D ops the file has (the bands add two per 7x7 kernel)."""
    from mobileseg.deploy.tflite_convert import op_names

    return op_names(path.read_bytes()).count("DEPTHWISE_CONV_2D")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run folder (model.keras, config.yaml)")
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the bands")
    parser.add_argument("--qat_epochs", type=int, default=3)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "wide_depthwise_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wide_depthwise_camvid.json")
    args = parser.parse_args()
    missing = [name for name in RUN_FILES if not (args.run / name).is_file()]
    if missing or not (args.before / "mobileseg").is_dir():
        print(f"error: {args.run if missing else args.before}: "
              f"{'no ' + ', '.join(missing) if missing else 'not a mobileseg checkout'}", file=sys.stderr)
        return 2

    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    load_before = os.getloadavg()
    work = args.work_dir.resolve() / args.run.resolve().name
    commands, rows = [], []
    for code, tree in zip(CODES, (args.before.resolve(), ROOT), strict=True):
        run_dir = work / code
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if not (run_dir / name).is_file():
                shutil.copy2(args.run / name, run_dir / name)
        log = run_dir / "benchmark.log"
        command = export_command(run_dir, args.data, args.qat_epochs)
        commands.append(f"(in {tree}) " + " ".join(command))
        if not (run_dir / "export" / "model_int8.tflite").is_file():
            run(command, log, cwd=tree)
        for mode in ("int8", "fp32"):
            path = run_dir / "export" / f"model_{mode}.tflite"
            rows.append({"code": code, "mode": mode, "file": str(path), "depthwise_ops": depthwise_ops(path),
                         **{f"{split}_miou": miou(path, split, args.data, log, commands) for split in ("val", "test")}})
    time_rows(rows, args.rounds)
    before_commit = subprocess.run(["git", "-C", str(args.before), "rev-parse", "HEAD"], capture_output=True,
                                   text=True).stdout.strip()
    result = {"rows": rows, "run": repository_path(args.run), "before_commit": before_commit,
              "command": "python benchmarks/wide_depthwise_camvid.py " + " ".join(sys.argv[1:]), "commands": commands,
              "versions": versions(), "machine": environment(),
              "load_average": {"start": list(load_before), "end": list(os.getloadavg())}}
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(f"{row['code']:6s} {row['mode']}: val {100 * row['val_miou']:.2f} test {100 * row['test_miou']:.2f}  "
              f"{row['ms']:.2f} ms, {row['depthwise_ops']} depthwise ops")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
