"""Benchmark: ``python -m mobileseg.search`` on CamVid with the default space, on this 2-core CPU.

Runs the search command as a user would (a subprocess, its output streamed and kept in
``RUN_DIR/search.log``) at a budget the machine affords in about an hour, then writes
``benchmarks/results/search_camvid.json``: the exact command, versions, machine, load
averages, the wall time of each stage (latency table, supernet, search, outputs) from
``RUN_DIR/search_state.json``, the Pareto front, the chosen network and the references
(from ``RUN_DIR/pareto.json``); and copies ``pareto.png`` to
``benchmarks/results/search_camvid_pareto.png``.

The budget (every value a flag of this script, passed on to the command):

- search resolution 184x240 (the command's default for CamVid: half of 360x480, rounded to
  the output stride 8); latency of int8 blocks on this CPU, 1 LiteRT thread, every block of
  the default space (about 355) measured into ``RUN_DIR/latency_table.json``;
- supernet: 6 epochs of 20 steps of 8 images (960 images through the sandwich rule);
- NSGA-II: 5 generations of 12 networks, each scored after recalibrating batch norm on 4
  training batches, on the first 40 validation images;
- references: the 2 of ``search_space/references/`` cheapest to add to the table.

Started again with the same flags it resumes (the command does: blocks measured, supernet
epochs and trials done are kept); the stage times are then those of the last call.

Full run (about an hour on the 2-core CPU; do not run it alongside other heavy jobs):
    python benchmarks/search_camvid.py

Tiny end-to-end check (a few minutes; the figures mean nothing):
    python benchmarks/search_camvid.py --data synthetic:16,size=64x64 --space search_space/demo.yaml \\
        --supernet_epochs 1 --steps_per_epoch 2 --population 4 --generations 2 --calib_batches 1 \\
        --val_images 4 --references none --run_dir /tmp/search_camvid_tiny \\
        --out /tmp/search_camvid_tiny.json --png_out /tmp/search_camvid_tiny.png
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FLAGS = flags.FLAGS

flags.DEFINE_string("data", f"camvid:{REPO.parent / 'shared' / 'datasets' / 'camvid'}", "Data set KIND:PATH.")
flags.DEFINE_string("space", "search_space/default.yaml", "Search space.")
flags.DEFINE_string("input_size", None, "Search resolution (default: the command's, 184x240 for CamVid).")
flags.DEFINE_integer("supernet_epochs", 6, "Supernet epochs.")
flags.DEFINE_integer("steps_per_epoch", 20, "Supernet steps per epoch.")
flags.DEFINE_integer("batch_size", 8, "Images per supernet step and calibration batch.")
flags.DEFINE_integer("population", 12, "Networks per generation.")
flags.DEFINE_integer("generations", 5, "Generations.")
flags.DEFINE_integer("calib_batches", 4, "Batch-norm recalibration batches per network.")
flags.DEFINE_integer("val_images", 40, "Validation images of the proxy mIoU.")
flags.DEFINE_string("references", "cheapest:2", "Reference networks placed on the plot.")
flags.DEFINE_float("target_latency_ms", None, "Latency target (none: the knee of the front is chosen).")
flags.DEFINE_integer("threads", 1, "LiteRT threads when timing blocks.")
flags.DEFINE_enum("clock", "thread_cpu", ["wall", "thread_cpu"], "How blocks are timed (thread_cpu: the idle-core "
                  "latency on this shared machine).")
flags.DEFINE_string("run_dir", str(REPO / "runs" / "search_camvid_benchmark"), "The search's run folder.")
flags.DEFINE_string("out", str(RESULTS / "search_camvid.json"), "Result file.")
flags.DEFINE_string("png_out", str(RESULTS / "search_camvid_pareto.png"), "Where pareto.png is copied.")


def search_command() -> list[str]:
    """The ``python -m mobileseg.search`` command line these flags describe."""
    command = [sys.executable, "-m", "mobileseg.search", "--space", FLAGS.space, "--data", FLAGS.data,
               "--run_dir", FLAGS.run_dir, "--budget", "default", "--supernet_epochs", str(FLAGS.supernet_epochs),
               "--steps_per_epoch", str(FLAGS.steps_per_epoch), "--batch_size", str(FLAGS.batch_size),
               "--population", str(FLAGS.population), "--generations", str(FLAGS.generations),
               "--calib_batches", str(FLAGS.calib_batches), "--val_images", str(FLAGS.val_images),
               "--references", FLAGS.references, "--threads", str(FLAGS.threads), "--clock", FLAGS.clock, "--noprogress"]
    if FLAGS.input_size:
        command += ["--input_size", FLAGS.input_size]
    if FLAGS.target_latency_ms is not None:
        command += ["--target_latency_ms", f"{FLAGS.target_latency_ms:g}"]
    return command


def run_logged(command: list[str], log: Path) -> int:
    """Run ``command`` in the repository, its output streamed to stdout and appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        for line in process.stdout:
            sys.stdout.write(line)
            out.write(line)
        return process.wait()


def main(argv: list[str]) -> int:
    del argv
    sys.path.insert(0, str(REPO))
    from result_genotypes import keep

    from mobileseg.atomic_write import write_atomic
    from mobileseg.provenance import load_average, machine, versions
    from mobileseg.run.run_config import read_config

    run_dir = Path(FLAGS.run_dir)
    command = search_command()
    load_start, started = load_average(), time.perf_counter()
    code = run_logged(command, run_dir / "search.log")
    wall = time.perf_counter() - started
    if code != 0:
        print(f"the search exited {code}; see {run_dir / 'search.log'}", file=sys.stderr)
        return code
    state = json.loads((run_dir / "search_state.json").read_text())
    pareto = json.loads((run_dir / "pareto.json").read_text())
    config = read_config(run_dir)["search"]
    result = {
        "command": " ".join(["python -m mobileseg.search", *command[3:]]),
        "benchmark_command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "data": FLAGS.data, "space": FLAGS.space, "input_size": config["input_size"],
        "budget": {name: config[name] for name in ("supernet_epochs", "steps_per_epoch", "batch_size", "population",
                                                   "generations", "calib_batches", "val_images", "references",
                                                   "search_scale", "threads")},
        "wall_seconds": round(wall, 1),
        "stages": {name: {key: value for key, value in stage.items() if key != "last_epoch"}
                   for name, stage in state["stages"].items()},
        "supernet_last_epoch": state["stages"].get("supernet", {}).get("last_epoch"),
        "latency_source": pareto["latency_source"],
        "study": pareto["study"],
        "target_latency_ms": pareto["target_latency_ms"],
        "chosen": {**{key: value for key, value in pareto["chosen"].items() if key != "arch"},  # a run-folder name
                   **keep(run_dir / "arch.yaml", "search_camvid", "chosen")},
        "front": [{**{key: entry.get(key) for key in ("trial", "generation", "latency_ms", "miou", "feasible", "params",
                                                      "macs")},
                   **keep(entry["genotype"], "search_camvid", f"trial{entry['trial']}")}
                  for entry in pareto["front"]],
        "references": pareto["references"],
        "versions": versions(), "machine": machine(),
        "load_average": {"start": load_start, "stages_end": {name: stage.get("load_average_end")
                                                             for name, stage in state["stages"].items()},
                         "end": load_average()},
        "note": "Shared 2-core machine: other engineers' jobs may run at the same time (see load_average). "
                "Stage times are those of the last call of the command (a resumed run skips what was done).",
    }
    write_atomic(FLAGS.out, json.dumps(result, indent=2) + "\n")
    Path(FLAGS.png_out).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "pareto.png", FLAGS.png_out)
    stages = ", ".join(f"{name} {stage['seconds']:.0f} s" for name, stage in state["stages"].items())
    print(f"search on {FLAGS.data}: {wall / 60:.1f} min ({stages}); {len(pareto['front'])} networks on the front "
          f"-> {FLAGS.out}, {FLAGS.png_out}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
