"""Train reference networks from scratch on CamVid with one recipe and a wall-clock budget each.

For every ``--arch``: two epochs with ``python -m mobileseg.train`` to time a steady
epoch on this machine (the first one includes tracing), then the same run resumed up to as many epochs as the budget allows
(the learning-rate schedule is set for that total), then
``python -m mobileseg.evaluate`` on the CamVid test split at full resolution
(360x480); training crops are 240x320 after random scaling. Networks train concurrently when ``--parallel`` (each then gets about
one core of this 2-core machine). Writes ``benchmarks/results/train_references_camvid.json``
with test mIoU, per-class IoU, train time, the exact commands, versions and machine.

Example:
    python benchmarks/train_references_camvid.py --budget_minutes 60 \\
        --arch search_space/references/seaformer_tiny.yaml \\
        --arch search_space/references/mobilenetv3_small_lraspp.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
RECIPE = ["--input_size", "240x320", "--model_size", "360x480", "--batch_size", "8", "--lr", "2e-3", "--weight_decay", "0.01",
          "--schedule", "poly", "--warmup_epochs", "2", "--scale_range", "0.5,2.0", "--seed", "0",
          "--verbose", "2"]


def run(command: list[str], log: Path) -> None:
    """Run a command, appending its output to ``log``; raise with the log's tail on failure."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = log.read_text().splitlines()[-20:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n" + "\n".join(tail))


def train_and_test(arch: Path, runs: Path, budget_s: float, data: str) -> dict:
    """One network: time an epoch, train within the budget, evaluate on test."""
    run_dir = runs / arch.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "benchmark.log"
    train = [sys.executable, "-m", "mobileseg.train", "--arch", str(arch), "--data", data,
             "--run_dir", str(run_dir), *RECIPE]
    started = time.time()
    run([*train, "--epochs", "2"], log)  # epoch 1 includes tracing: time the budget on epoch 2
    first = time.time() - started
    epochs_log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    epoch_s = epochs_log[-1]["epoch_seconds"]
    epochs = max(2, int((budget_s - first) // (epoch_s * 1.05)) + 2)
    run([*train, "--epochs", str(epochs)], log)
    train_s = time.time() - started
    evaluate = [sys.executable, "-m", "mobileseg.evaluate", "--model", str(run_dir / "model.keras"),
                "--data", data, "--split", "test", "--out", str(run_dir / "test.json"), "--noprogress"]
    run(evaluate, log)
    test = json.loads((run_dir / "test.json").read_text())
    history = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return {"arch": str(arch.relative_to(ROOT)), "epochs": epochs, "train_seconds": round(train_s),
            "probe_seconds": round(first), "epoch_seconds": epoch_s,
            "best_val_miou": max(h.get("val_miou", 0.0) for h in history),
            "test_miou": test["miou"], "test_pixel_accuracy": test["pixel_accuracy"],
            "test_per_class_iou": test["per_class_iou"],
            "commands": [" ".join([*train, "--epochs", str(epochs)]), " ".join(evaluate)]}


def versions() -> dict:
    """Versions of what the numbers depend on."""
    from importlib.metadata import version

    return {name: version(name) for name in ("tensorflow", "keras", "ai-edge-litert", "numpy")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", type=Path, required=True)
    parser.add_argument("--budget_minutes", type=float, default=60.0)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "train_references_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_references_camvid.json")
    parser.add_argument("--parallel", action="store_true", help="train the networks concurrently")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.latency.device import local_fingerprint

    data = f"camvid:{CAMVID}"
    load_before, started = os.getloadavg(), time.time()
    with ThreadPoolExecutor(max_workers=len(args.arch) if args.parallel else 1) as pool:
        results = list(pool.map(lambda a: train_and_test(a.resolve(), args.runs, args.budget_minutes * 60, data),
                                args.arch))
    report = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "recipe": RECIPE,
              "budget_minutes_each": args.budget_minutes, "parallel": args.parallel,
              "machine": local_fingerprint(1), "versions": versions(),
              "load_average_before_after": [load_before, os.getloadavg()],
              "wall_seconds": round(time.time() - started), "results": results}
    write_atomic(args.out, json.dumps(report, indent=2) + "\n")
    for r in results:
        print(f"{r['arch']}: test mIoU {100 * r['test_miou']:.1f} after {r['epochs']} epochs in {r['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
