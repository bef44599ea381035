"""Benchmark (issue 15): what the class-map head costs in CamVid mIoU, and what upsampling the logits buys back.

``--output mask`` files return a uint8 class map at the input size; by default the argmax is taken at the
logits' resolution (1/8) and the ids upsampled nearest (`mobileseg.deploy.packaging.ClassMap`), while
``mobileseg.evaluate`` scores a ``.keras`` model or a logits file by resizing its logits bilinearly to the
labels first. For one trained run folder (``model.keras`` and the ``model_qat.keras`` its export fine-tuned),
copied with its ``config.yaml`` into ``--work_dir/NAME`` (RUN below) so that the run itself is left as it was:

1. ``python -m mobileseg.export --run_dir RUN --int8 --fp32 --output mask --mask_upsample K`` into
   ``RUN/mask_head/upK/`` for every K of ``--factors``, and ``--output logits`` into ``RUN/mask_head/logits/``
   (``--qat_epochs 0``: the run's quantization-aware model is reused, so every int8 file holds the same weights);
2. ``python -m mobileseg.evaluate`` of ``model.keras`` and of every file on val and test (K is to be chosen on
   val; test is reported, never tuned on);
3. every file timed in ``--rounds`` interleaved rounds (LiteRT, 1 thread, thread CPU clock), each file's
   median round kept.

Writes ``--out`` (default ``benchmarks/results/mask_head_camvid.json``): ``{"rows": [{"file", "mode",
"output", "mask_upsample", "val_miou", "test_miou", "ms", "round_ms", "xnnpack_partitions", "fallback_ops"}],
"float": {"val_miou", "test_miou"}, "run", "commands", "versions", "machine", "load_average"}``. Every export
and evaluation is skipped when its output exists, so a killed run continues.

Example:
    python benchmarks/mask_head_camvid.py --run runs/camvid_full/mobilenetv3_small_lraspp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from camvid_runs import CAMVID, ROOT, evaluate_command, repository_path, run, versions

SPLITS = ("val", "test")
RUN_FILES = ("model.keras", "model_qat.keras", "config.yaml")


def exports(run_dir: Path, factors: list[int], data: str) -> list[tuple[list[str], Path, int | None]]:
    """The export commands, each with the folder it writes and its ``--mask_upsample`` (None: logits out)."""
    base = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(run_dir), "--data", data, "--int8", "--fp32",
            "--qat_epochs", "0", "--noevaluate", "--seed", "0"]
    heads = [(["--output", "mask", "--mask_upsample", str(k)], run_dir / "mask_head" / f"up{k}", k) for k in factors]
    heads.append((["--output", "logits"], run_dir / "mask_head" / "logits", None))
    return [([*base, *flags, "--out_dir", str(folder)], folder, factor) for flags, folder, factor in heads]


def miou(model: Path, split: str, data: str, log: Path, commands: list[str]) -> float:
    """``model``'s mIoU on ``split`` (evaluated once; the JSON beside the model is reused)."""
    out = model.parent / f"{model.stem}_{model.suffix[1:]}_{split}.json"
    command = evaluate_command(model, data, out, split)
    commands.append(" ".join(command))
    if not out.is_file():
        run(command, log)
    return json.loads(out.read_text())["miou"]


def time_rows(rows: list[dict], rounds: int) -> None:
    """Time every row's ``file`` in ``rounds`` interleaved rounds (LiteRT, 1 thread, thread CPU clock): each row
    gains ``round_ms``, ``ms`` (its median round), ``xnnpack_partitions`` and ``fallback_ops``, and its ``file``
    becomes relative to the repository."""
    from mobileseg.latency.validation import time_rounds
    from mobileseg.litert_measure import measure_tflite

    measurer = lambda path: measure_tflite(path, threads=1, clock="thread_cpu", max_seconds=5)  # noqa: E731
    timed, _ = time_rounds(measurer, [row["file"] for row in rows], rounds, "timing")
    for row, records in zip(rows, timed, strict=True):
        row["file"] = repository_path(Path(row["file"]))
        row["round_ms"] = [record.median_ms for record in records]
        row["ms"] = sorted(row["round_ms"])[(len(records) - 1) // 2]
        row["xnnpack_partitions"], row["fallback_ops"] = records[0].xnnpack_partitions, records[0].fallback_ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run folder with model_qat.keras")
    parser.add_argument("--factors", default="1,2,4,8", help="--mask_upsample values, comma separated")
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "mask_head_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mask_head_camvid.json")
    args = parser.parse_args()
    if not (args.run / "model_qat.keras").is_file():
        print(f"error: {args.run}: no model_qat.keras (export with --qat_epochs N first)", file=sys.stderr)
        return 2
    try:
        factors = [int(k) for k in args.factors.split(",")]
    except ValueError:
        print(f"error: --factors {args.factors}: expected integers, comma separated", file=sys.stderr)
        return 2

    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    load_before = os.getloadavg()
    work = args.work_dir / args.run.resolve().name
    work.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if not (work / name).is_file():
            shutil.copy2(args.run / name, work / name)
    log, commands, rows = work / "mask_head.log", [], []
    for command, folder, factor in exports(work, factors, args.data):
        commands.append(" ".join(command))
        if not (folder / "model_int8.tflite").is_file():
            run(command, log)
        for mode in ("int8", "fp32"):
            path = folder / f"model_{mode}.tflite"
            rows.append({"file": str(path), "mode": mode, "output": "logits" if factor is None else "mask",
                         "mask_upsample": factor, **{f"{split}_miou": miou(path, split, args.data, log, commands)
                                                     for split in SPLITS}})
    float_miou = {f"{split}_miou": miou(work / "model.keras", split, args.data, log, commands) for split in SPLITS}
    time_rows(rows, args.rounds)
    result = {"rows": rows, "float": float_miou, "run": repository_path(args.run),
              "command": "python benchmarks/mask_head_camvid.py " + " ".join(sys.argv[1:]), "commands": commands,
              "versions": versions(), "machine": environment(),
              "load_average": {"start": list(load_before), "end": list(os.getloadavg())}}
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(f"{row['mode']} {row['output']:6s} x{row['mask_upsample'] or '-'}: val {100 * row['val_miou']:.2f} "
              f"test {100 * row['test_miou']:.2f}  {row['ms']:.2f} ms")
    print(f"float: val {100 * float_miou['val_miou']:.2f} test {100 * float_miou['test_miou']:.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
