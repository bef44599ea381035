"""Benchmark (issue 9, item 2): the evolutionary and the differentiable search on CamVid at one compute budget.

Three searches of ``--space`` on ``--data`` with ``python -m mobileseg.search``: ``evolutionary``
(sandwich-rule supernet, then NSGA-II), ``differentiable`` with GAS's GCN and ``differentiable``
without it (``--nogcn``). Each found network (its ``arch.yaml``) is then trained with one recipe
(``python -m mobileseg.train``, the recipe of ``benchmarks/train_references_camvid.py``), scored on
the test split (``python -m mobileseg.evaluate``, float and int8), exported to full-integer int8
(``python -m mobileseg.export --int8 --ptq --output mask --input uint8``, the ``cpu-int8``
profile's format) and the three int8 files are timed together at 1 thread
(`mobileseg.litert_measure.measure_interleaved`, the invoking thread's CPU time: this 2-core
machine is shared, and wall time under load measures the neighbours).

Steps, in ``--work_dir``:

1. **latency table**: ``python -m mobileseg.latency build`` measures every block of the space at
   the search resolution once, into ``latency_table.json`` (``--latency_table`` reuses a finished
   table of the same space, size, classes and clock); the three searches read it
   (``--latency_backend table:FILE``), so they predict the same latencies and measure nothing.
2. **target**: ``--target_latency_ms``, or by default the median predicted latency of 200 seeded
   random networks of the space (so the target is inside the space's range whatever the table).
3. **searches** at the same compute budget, counted in training passes (forward and backward of
   one network on one batch): the sandwich rule runs 4 networks a step (largest, smallest, 2
   random), the differentiable search 2 (an architecture step and a weight step), so the
   differentiable searches get ``2 x --supernet_epochs`` epochs of the same ``--steps_per_epoch``.
   The evolutionary search additionally scores ``--population x --generations`` networks
   (batch-norm recalibration and validation), the differentiable one network per epoch; the
   wall time of each search is reported, stage by stage.
4. **train, test, export, time** each network (above).

Writes ``--out`` (``benchmarks/results/search_strategies_camvid.json``): per strategy the search
(wall time, stages, epochs, the chosen network's predicted latency and proxy mIoU), the training
(epochs, seconds, best val mIoU), test mIoU (float and int8) and the measured int8 latency; the
target, the budget rule, the exact commands, versions, machine and load averages. Every command
resumes, so running the script again goes on where it stopped (a finished step is skipped).

Full run on CamVid (hours on the 2-core CPU; do not run it alongside other heavy jobs):
    python benchmarks/search_strategies_camvid.py

Tiny end-to-end check (minutes; the figures mean nothing):
    python benchmarks/search_strategies_camvid.py --data synthetic:24,size=64x64 \\
        --space search_space/demo.yaml --input_size 32x32 --supernet_epochs 1 --steps_per_epoch 2 \\
        --batch_size 2 --population 4 --generations 1 --calib_batches 1 --val_images 4 --train_epochs 1 \\
        --train_input_size 64x64 --model_size 64x64 --work_dir /tmp/strategies_tiny \\
        --out /tmp/strategies_tiny.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = {"evolutionary": [], "differentiable_gcn": ["--strategy", "differentiable", "--gcn"],
              "differentiable_nogcn": ["--strategy", "differentiable", "--nogcn"]}
RECIPE = ["--batch_size", "8", "--lr", "2e-3", "--weight_decay", "0.01", "--schedule", "poly", "--warmup_epochs",
          "2", "--scale_range", "0.5,2.0", "--seed", "0", "--verbose", "2", "--notensorboard",
          "--class_weight", "none"]  # as its committed results were trained, before class weights were the default
"""The training recipe of benchmarks/train_references_camvid.py (sizes and epochs are flags here)."""
TARGET_SAMPLES = 200


def define_flags() -> None:
    """Declare the flags (at start-up only)."""
    from absl import flags

    flags.DEFINE_string("data", f"camvid:{REPO.parent / 'shared' / 'datasets' / 'camvid'}", "Data set KIND:PATH.")
    flags.DEFINE_string("space", "search_space/default.yaml", "Search space.")
    flags.DEFINE_string("input_size", "184x240", "Search resolution (the search command's default for CamVid).")
    flags.DEFINE_integer("supernet_epochs", 6, "Evolutionary: supernet epochs (differentiable: twice as many).")
    flags.DEFINE_integer("steps_per_epoch", 20, "Steps per epoch of every search.")
    flags.DEFINE_integer("batch_size", 8, "Images per search step and calibration batch.")
    flags.DEFINE_integer("population", 12, "Evolutionary: networks per generation.")
    flags.DEFINE_integer("generations", 5, "Evolutionary: generations.")
    flags.DEFINE_integer("calib_batches", 4, "Batch-norm recalibration batches per scored network.")
    flags.DEFINE_integer("val_images", 40, "Validation images of the proxy mIoU.")
    flags.DEFINE_float("target_latency_ms", None, "Latency target of every search (default: the median predicted "
                       f"latency of {TARGET_SAMPLES} random networks of the space).")
    flags.DEFINE_string("latency_table", None, "A finished table of the space at --input_size (thread_cpu clock, 1 "
                        "thread) to reuse (default: WORK_DIR/latency_table.json, measured here).")
    flags.DEFINE_integer("train_epochs", 40, "Epochs of the one training recipe.")
    flags.DEFINE_string("train_input_size", "240x320", "Training crop of the recipe.")
    flags.DEFINE_string("model_size", "360x480", "Size model.keras (and the int8 file) is saved for.")
    flags.DEFINE_list("strategies", list(STRATEGIES), f"Which of {', '.join(STRATEGIES)} to run.")
    flags.DEFINE_string("work_dir", str(REPO / "runs" / "search_strategies_camvid"), "Where every run goes.")
    flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "search_strategies_camvid.json"), "Result.")


def run_logged(command: list[str], log: Path) -> float:
    """Run ``command`` in the repository, its output streamed and appended to ``log``; its wall seconds.

    Raises:
        RuntimeError: it failed (the message has the log's tail).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        for line in process.stdout:
            sys.stdout.write(line)
            out.write(line)
        code = process.wait()
    if code:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} exited {code}:\n{tail}")
    return time.perf_counter() - started


def shown(command: list[str]) -> str:
    """A command as a user types it (``python -m ...``)."""
    return " ".join(["python", *command[1:]]) if command[0] == sys.executable else " ".join(command)


def median_latency(space_path: str, table_path: Path, input_size, num_classes: int) -> float:
    """The median predicted latency of `TARGET_SAMPLES` seeded random buildable networks of the space."""
    import numpy as np

    from mobileseg.arch.space import SearchSpace
    from mobileseg.latency.block_model import sample_buildable
    from mobileseg.latency.blocks import signatures_of
    from mobileseg.latency.predictor import TableLatencyModel
    from mobileseg.latency.table import LatencyTable

    space = SearchSpace.load(REPO / space_path)
    model = TableLatencyModel(LatencyTable.load(table_path), lambda g: signatures_of(g, input_size, num_classes))
    rng = np.random.default_rng(0)
    return float(np.median([model.latency_ms(sample_buildable(space, rng, input_size, num_classes)[0])
                            for _ in range(TARGET_SAMPLES)]))


def search_command(name: str, run_dir: Path, table: Path, target: float) -> list[str]:
    """The search command of one strategy at the shared budget."""
    from absl import flags

    f = flags.FLAGS
    epochs = f.supernet_epochs * (2 if name.startswith("differentiable") else 1)
    return [sys.executable, "-m", "mobileseg.search", "--space", f.space, "--data", f.data, "--run_dir",
            str(run_dir), "--input_size", f.input_size, "--latency_backend", f"table:{table}", "--budget", "default",
            "--supernet_epochs", str(epochs), "--steps_per_epoch", str(f.steps_per_epoch), "--batch_size",
            str(f.batch_size), "--population", str(f.population), "--generations", str(f.generations),
            "--calib_batches", str(f.calib_batches), "--val_images", str(f.val_images), "--references", "none",
            "--target_latency_ms", f"{target:g}", "--noprogress", *STRATEGIES[name]]


def strategy(name: str, work: Path, table: Path, target: float) -> dict:
    """Search, train, test and export one strategy's network; its figures (the int8 latency comes later)."""
    from absl import flags

    from result_genotypes import keep

    f = flags.FLAGS
    folder = work / name
    log = folder / "benchmark.log"
    search = search_command(name, folder / "search", table, target)
    run_logged(search, log)
    state = json.loads((folder / "search" / "search_state.json").read_text())
    pareto = json.loads((folder / "search" / "pareto.json").read_text())
    train_dir = folder / "train"
    train = [sys.executable, "-m", "mobileseg.train", "--arch", str(folder / "search" / "arch.yaml"), "--data", f.data,
             "--run_dir", str(train_dir), "--epochs", str(f.train_epochs), "--input_size", f.train_input_size,
             "--model_size", f.model_size, *RECIPE]
    train_seconds = run_logged(train, log)
    history = [json.loads(line) for line in (train_dir / "train_log.jsonl").read_text().splitlines()]
    export = [sys.executable, "-m", "mobileseg.export", "--run_dir", str(train_dir), "--int8", "--ptq", "--output",
              "mask", "--input", "uint8", "--noevaluate", "--calibration_images", "32"]
    int8 = train_dir / "export" / "model_int8.tflite"
    if not int8.is_file():
        run_logged(export, log)
    tests = {}
    commands = [shown(search), shown(train), shown(export)]
    for kind, model in (("float", train_dir / "model.keras"), ("int8", int8)):
        out = folder / f"test_{kind}.json"
        evaluate = [sys.executable, "-m", "mobileseg.evaluate", "--model", str(model), "--data", f.data, "--split",
                    "test", "--out", str(out), "--noprogress"]
        if not out.is_file():
            run_logged(evaluate, log)
        tests[kind] = json.loads(out.read_text())["miou"]
        commands.append(shown(evaluate))
    stages = state["stages"]
    searched = [key for key in stages if key not in ("latency", "outputs")]
    return {
        "search": {"seconds": round(sum(stages[key]["seconds"] for key in stages), 1),
                   "stages": {key: stages[key]["seconds"] for key in stages},
                   "epochs": stages[searched[0]].get("epoch"),
                   "study": pareto["study"],
                   "chosen": {key: value for key, value in pareto["chosen"].items() if key != "arch"},  # a run-folder name
                   "load_average": state["load_average"]},
        **{("arch" if key == "genotype" else key): value
           for key, value in keep(folder / "search" / "arch.yaml", "search_strategies_camvid", name).items()},
        "train": {"epochs": len(history), "seconds_this_call": round(train_seconds, 1),
                  "best_val_miou": max((h.get("val_miou", 0.0) for h in history), default=None)},
        "test_miou": tests["float"], "test_miou_int8": tests["int8"], "int8_file": str(int8),
        "commands": commands,
    }


def main(argv: list[str]) -> int:
    del argv
    sys.path.insert(0, str(REPO))
    from absl import flags

    from mobileseg.atomic_write import write_atomic
    from mobileseg.cli_flags import parse_size
    from mobileseg.data.sources import open_source
    from mobileseg.litert_measure import measure_interleaved
    from mobileseg.provenance import load_average, machine, versions

    f = flags.FLAGS
    unknown = [name for name in f.strategies if name not in STRATEGIES]
    if unknown:
        print(f"--strategies: unknown {unknown}; expected some of {', '.join(STRATEGIES)}", file=sys.stderr)
        return 2
    work = Path(f.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    load_start, started = load_average(), time.perf_counter()
    input_size = parse_size(f.input_size)
    num_classes = open_source(f.data).num_classes
    table = Path(f.latency_table) if f.latency_table else work / "latency_table.json"
    build = [sys.executable, "-m", "mobileseg.latency", "build", "--space", f.space, "--input_size", f.input_size,
             "--num_classes", str(num_classes), "--clock", "thread_cpu", "--threads", "1", "--out", str(table),
             "--noprogress"]
    table_seconds = run_logged(build, work / "latency.log")
    target = f.target_latency_ms
    if target is None:
        target = round(median_latency(f.space, table, input_size, num_classes), 3)
    results = {name: strategy(name, work, table, target) for name in f.strategies}
    records = measure_interleaved([results[name]["int8_file"] for name in results], threads=1,
                                  names=list(results), clock="thread_cpu")
    for name, record in zip(results, records, strict=True):
        results[name]["int8_latency"] = {"median_ms": record.median_ms, "p90_ms": record.p90_ms,
                                         "runs": record.runs, "xnnpack_partitions": record.xnnpack_partitions,
                                         "fallback_ops": record.fallback_ops, "clock": "thread_cpu", "threads": 1}
    report = {
        "benchmark_command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "data": f.data, "space": f.space, "search_input_size": list(input_size), "num_classes": num_classes,
        "latency_table": {"file": str(table), "command": shown(build), "seconds_this_call": round(table_seconds, 1)},
        "target_latency_ms": target,
        "target_rule": "given" if f.target_latency_ms is not None else
                       f"median predicted latency of {TARGET_SAMPLES} random networks of the space (seed 0)",
        "budget": {"rule": "equal training passes (forward+backward of one network on one batch): the sandwich "
                           "rule runs 4 networks a step, the differentiable search 2 (architecture + weights), so "
                           "it gets twice the supernet's epochs at the same steps per epoch; the evolutionary "
                           "search also scores population x generations networks, the differentiable one a epoch",
                   "supernet_epochs": f.supernet_epochs, "differentiable_epochs": 2 * f.supernet_epochs,
                   "steps_per_epoch": f.steps_per_epoch, "batch_size": f.batch_size, "population": f.population,
                   "generations": f.generations, "calib_batches": f.calib_batches, "val_images": f.val_images},
        "recipe": {"epochs": f.train_epochs, "input_size": f.train_input_size, "model_size": f.model_size,
                   "flags": RECIPE},
        "results": results,
        "wall_seconds_this_call": round(time.perf_counter() - started, 1),
        "versions": versions(), "machine": machine(),
        "load_average": {"start": load_start, "end": load_average()},
        "note": "Shared 2-core machine: other jobs may run at the same time (see the load averages). Search and "
                "training times are those of the last call of each command (a resumed step skips what was done).",
    }
    write_atomic(f.out, json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name}: search {r['search']['seconds']:.0f} s, predicted {r['search']['chosen']['latency_ms']:.2f} ms, "
              f"test mIoU {100 * r['test_miou']:.1f}% (int8 {100 * r['test_miou_int8']:.1f}%), int8 "
              f"{r['int8_latency']['median_ms']:.2f} ms")
    print(f"-> {f.out}")
    return 0


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
