"""Benchmark (issue 15 item 1): quantization-aware int8 against float and post-training int8 on CamVid.

For every network, the references (``--arch``; default segformer_b0, rtformer_slim,
seaformer_tiny and mobilenetv3_small_lraspp) and every member of a search's Pareto front
(``--front pareto.json``):

1. the float model, trained with the recipe of issue "Train to convergence"
   (`train_references_camvid.RECIPE` at 360x480 for ``--epochs``; chosen on val). A network
   already trained in ``--float_from DIR/NAME`` (e.g. ``runs/train_references_camvid``) is copied,
   not trained again;
2. one ``python -m mobileseg.export --int8 --qat_epochs Q --ptq`` into ``RUN/qat_camvid/``:
   the quantization-aware file ``model_int8.tflite`` and the post-training baseline
   ``model_int8_ptq.tflite`` (uint8 image in, uint8 class map out, `cpu-int8` profile). A QAT
   export that fails (diverged, or the converter refused its ranges) leaves its row's
   ``qat_int8_test_miou`` null and the log's last line under ``details``;
3. ``python -m mobileseg.evaluate`` of ``model.keras`` and both int8 files on the 233 test images.

Every step is skipped when its output exists, so a killed run continues where it stopped.
Writes ``benchmarks/results/qat_camvid.json``: ``rows`` of exactly ``{"network",
"float_test_miou", "qat_int8_test_miou", "ptq_int8_test_miou"}`` (fractions), ``within_target``
(QAT int8 within `TARGET_POINTS` mIoU points of float, per network), ``details`` (commands,
files, QAT errors), the command, versions, machine and load.

Example:
    python benchmarks/qat_camvid.py --float_from runs/train_references_camvid \\
        --front runs/search_camvid_benchmark/pareto.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from camvid_runs import CAMVID, ROOT, evaluate_command, export_int8, repository_path, run, train_float, versions
from pareto_camvid import front_archs
from train_references_camvid import RECIPE, SIZE

REFERENCES = ("segformer_b0", "rtformer_slim", "seaformer_tiny", "mobilenetv3_small_lraspp")
TARGET_POINTS = 0.5
"""The issue's target: QAT int8 test mIoU at most this many points below float."""
RUN_FILES = ("model.keras", "last.keras", "config.yaml", "train_state.json", "train_log.jsonl")


def qat_and_ptq(arch: Path, epochs: int, qat_epochs: int, work_dir: Path, data: str,
                float_from: Path | None) -> tuple[dict, dict]:
    """Steps 1-3 for one network: (its row, its details)."""
    run_dir = work_dir / arch.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = float_from / arch.stem if float_from else None
    if trained and (trained / "model.keras").is_file() and not (run_dir / "model.keras").is_file():
        for name in RUN_FILES:
            if (trained / name).is_file():
                shutil.copy2(trained / name, run_dir / name)
    log = run_dir / "benchmark.log"
    train = train_float(arch, SIZE, RECIPE, epochs, run_dir, data, log)
    out_dir = run_dir / "qat_camvid"
    files = {"qat": out_dir / "model_int8.tflite", "ptq": out_dir / "model_int8_ptq.tflite"}
    export = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(run_dir), "--data", data,
              "--out_dir", str(out_dir), "--target", "cpu-int8", "--int8", "--qat_epochs", str(qat_epochs),
              "--ptq", "--distill_weight", "20", "--noevaluate", "--seed", "0"]
    details = {"arch": repository_path(arch), "commands": [" ".join(train), " ".join(export)], "qat_error": None}
    if not files["qat"].is_file():
        try:
            export_int8(export, log, files["qat"])
        except RuntimeError as error:  # QAT diverged or its ranges were refused: the post-training file alone
            details["qat_error"] = str(error).splitlines()[-1]
            files["ptq"] = out_dir / "ptq_only" / "model_int8.tflite"
            (run_dir / "model_qat.keras").unlink(missing_ok=True)
            ptq_only = [*export[:export.index("--out_dir")], "--out_dir", str(files["ptq"].parent),
                        *export[export.index("--target"):]]
            ptq_only[ptq_only.index("--qat_epochs") + 1] = "0"
            details["commands"].append(" ".join(ptq_only))
            if not files["ptq"].is_file():
                export_int8(ptq_only, log, files["ptq"])
            files.pop("qat")
    models = {"float": run_dir / "model.keras", **files}
    mious = {}
    for name, model in models.items():
        result = run_dir / f"qat_camvid_test_{name}.json"
        command = evaluate_command(model, data, result)
        details["commands"].append(" ".join(command))
        if not result.is_file():
            run(command, log)
        mious[name] = json.loads(result.read_text())["miou"]
    details["files"] = {name: str(path) for name, path in models.items()}
    row = {"network": arch.stem, "float_test_miou": mious["float"], "qat_int8_test_miou": mious.get("qat"),
           "ptq_int8_test_miou": mious["ptq"]}
    return row, details


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", type=Path, default=None,
                        help="a genotype (repeatable; default: the four references of issue 15)")
    parser.add_argument("--front", type=Path, action="append", default=[],
                        help="a search's pareto.json: every front member too (repeatable)")
    parser.add_argument("--float_from", type=Path, default=None,
                        help="a folder of trained runs (NAME/model.keras) to start from instead of training")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--qat_epochs", type=int, default=2)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--parallel", type=int, default=1, help="networks run at once")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "qat_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "qat_camvid.json")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    archs = args.arch or [ROOT / "search_space" / "references" / f"{name}.yaml" for name in REFERENCES]
    archs += [path for pareto in args.front for path in front_archs(pareto, "qat_camvid")]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    load_before, started = os.getloadavg(), time.time()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(lambda arch: qat_and_ptq(arch, args.epochs, args.qat_epochs, args.work_dir,
                                                         args.data, args.float_from), archs))
    rows = [row for row, _ in results]
    within = {row["network"]: (row["qat_int8_test_miou"] is not None and 100 * (
        row["float_test_miou"] - row["qat_int8_test_miou"]) <= TARGET_POINTS) for row in rows}
    report = {"command": " ".join(["python", "benchmarks/qat_camvid.py", *sys.argv[1:]]),
              "recipe": RECIPE, "size": SIZE, "epochs": args.epochs, "qat_epochs": args.qat_epochs,
              "target_points": TARGET_POINTS, "environment": environment(), "versions": versions(),
              "load_average_before_after": [load_before, os.getloadavg()],
              "wall_seconds_this_run": round(time.time() - started), "rows": rows, "within_target": within,
              "details": {row["network"]: details for row, details in results}}
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    for row in rows:
        qat = "diverged" if row["qat_int8_test_miou"] is None else f"{100 * row['qat_int8_test_miou']:.2f}"
        print(f"{row['network']}: test mIoU float {100 * row['float_test_miou']:.2f}, QAT int8 {qat}, "
              f"PTQ int8 {100 * row['ptq_int8_test_miou']:.2f} (within {TARGET_POINTS}: {within[row['network']]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
