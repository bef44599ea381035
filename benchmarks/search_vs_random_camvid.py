"""Benchmark: does the search find better networks than random search at the same latency? (issue 14, item 3)

On CamVid at the search resolution (184x240), for ``--seed`` s (repeatable) and three latency
targets spread over the space's range:

1. **latency**: one block table of ``--space`` (``python -m mobileseg.latency build``, LiteRT on
   this CPU, one thread, thread CPU clock; blocks already in the persistent latency cache cost
   nothing). Every search of the benchmark predicts with it (``--latency_backend table:FILE``),
   so both strategies see the same latencies. The targets (``--targets``, default: the 20th,
   50th and 80th percentiles of the predicted latency of 300 seeded random networks) are
   written into the results.
2. **evolutionary** (the default strategy): the supernet trained once per seed
   (``--stage supernet``, ``--supernet_epochs``), copied into one folder per target, then
   ``--stage search --target_latency_ms T`` (NSGA-II, the default budget's population and
   generations). Its ``search_seconds`` are the supernet's training plus the search stage: what
   a user searching that one target pays.
3. **random** (``--strategy random``): the same population x generations of seeded random
   networks, scored by their predicted latency only; its ``arch.yaml`` is the slowest within the
   target. Its ``search_seconds`` are those of its run.
4. **trained**: every chosen ``arch.yaml`` trained with the recipe of the proxy-ranking ground
   truth (``proxy_rank_camvid.RECIPE``, ``--epochs`` at 184x240), exported to int8 with QAT and
   evaluated on test (``camvid_runs.train_export_evaluate``); ``int8_ms`` is the export
   report's LiteRT median of that int8 file (one thread).

Rows go to ``benchmarks/results/search_vs_random_camvid.json`` as each network finishes
(``{"rows": [{"target_ms", "strategy", "seed", "predicted_ms", "int8_ms", "test_miou",
"search_seconds"}], ...}``, ``test_miou`` the int8 file's, the float one beside it); a killed
run resumes from it and from the run folders (every step skips what is done). Genotypes are
committed under ``benchmarks/results/genotypes/search_vs_random_camvid/``.

Example (many hours on the 2-core CPU; run it over several sessions):
    python benchmarks/search_vs_random_camvid.py --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from camvid_runs import CAMVID, ROOT, run, train_export_evaluate, versions
from proxy_rank_camvid import RECIPE, SIZE
from result_genotypes import keep

RESULTS = ROOT / "benchmarks" / "results" / "search_vs_random_camvid.json"
STRATEGIES = ("evolutionary", "random")
PERCENTILES = (20, 50, 80)


def build_table(space: str, num_classes: int, work_dir: Path) -> Path:
    """The block table every search of the benchmark predicts with (measured once; resumable)."""
    table = work_dir / "latency_table.json"
    run([sys.executable, "-m", "mobileseg.latency", "build", "--space", space, "--input_size", SIZE,
         "--num_classes", str(num_classes), "--threads", "1", "--clock", "thread_cpu", "--out", str(table)],
        work_dir / "benchmark.log")
    return table


def default_targets(space: str, num_classes: int, table: Path, count: int = 300) -> list[float]:
    """The `PERCENTILES` of the predicted latency of ``count`` seeded random networks, 0.01 ms."""
    import numpy as np

    from mobileseg.arch.space import SearchSpace
    from mobileseg.cli_flags import parse_size
    from mobileseg.latency.blocks import signatures_of
    from mobileseg.latency.predictor import latency_model_from_spec

    size = parse_size(SIZE)
    model = latency_model_from_spec(f"table:{table}", lambda g: signatures_of(g, size, num_classes))
    rng = np.random.default_rng(0)
    loaded = SearchSpace.load(ROOT / space)
    predicted = [float(model.latency_ms(loaded.sample(rng))) for _ in range(count)]
    return [round(float(np.percentile(predicted, p)), 2) for p in PERCENTILES]


def search(strategy: str, target: float, seed: int, args, table: Path) -> tuple[Path, float]:
    """Run one strategy at one target; its run folder and search seconds (supernet included)."""
    base = args.work_dir / f"seed{seed}"
    run_dir = base / f"{strategy}_{target:g}ms"
    flags = ["--space", args.space, "--data", args.data, "--input_size", SIZE, "--seed", str(seed),
             "--budget", "default", "--references", "none", "--noprogress",
             "--latency_backend", f"table:{table}", "--target_latency_ms", f"{target:g}"]
    seconds = 0.0
    if strategy == "evolutionary":
        supernet_dir = base / "supernet_base"
        supernet = [sys.executable, "-m", "mobileseg.search", *flags, "--run_dir", str(supernet_dir),
                    "--stage", "supernet", "--supernet_epochs", str(args.supernet_epochs)]
        run(supernet, base / "benchmark.log")
        seconds += json.loads((supernet_dir / "search_state.json").read_text())["stages"]["supernet"]["seconds"]
        if not (run_dir / "supernet").is_dir():
            shutil.copytree(supernet_dir / "supernet", run_dir / "supernet")
        flags += ["--stage", "search", "--supernet_epochs", str(args.supernet_epochs)]
    else:
        flags += ["--strategy", "random"]
    run([sys.executable, "-m", "mobileseg.search", *flags, "--run_dir", str(run_dir)], base / "benchmark.log")
    stages = json.loads((run_dir / "search_state.json").read_text())["stages"]
    seconds += sum(stage["seconds"] for name, stage in stages.items() if name != "supernet")
    return run_dir, seconds


def measure(strategy: str, target: float, seed: int, args, table: Path) -> dict:
    """One row: search, keep the genotype, train, export, test."""
    run_dir, seconds = search(strategy, target, seed, args, table)
    chosen = json.loads((run_dir / "pareto.json").read_text())["chosen"]
    name = f"{strategy}_{target:g}ms_seed{seed}"
    from mobileseg.arch import schema_io

    kept = keep(schema_io.load(run_dir / "arch.yaml"), "search_vs_random_camvid", name)
    arch = args.work_dir / "networks" / f"{name}.yaml"
    arch.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "arch.yaml", arch)
    trained = train_export_evaluate(arch, SIZE, RECIPE, args.epochs, args.qat_epochs, args.work_dir / "trained",
                                    args.data)
    report = json.loads((args.work_dir / "trained" / name / "export" / "report.json").read_text())
    int8 = next(f for f in report["files"] if Path(f["file"]).name == "model_int8.tflite")
    return {"target_ms": target, "strategy": strategy, "seed": seed, "predicted_ms": chosen["latency_ms"],
            "int8_ms": int8["latency_ms"], "test_miou": trained["int8_test_miou"],
            "search_seconds": round(seconds, 1), "float_test_miou": trained["float_test_miou"],
            "best_val_miou": trained["best_val_miou"], "int8_method": trained["int8_method"],
            "xnnpack_partitions": int8.get("xnnpack_partitions"), "composition": trained["composition"],
            "proxy_miou": chosen.get("miou"), **kept, "commands": trained["commands"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default: 0)")
    parser.add_argument("--targets", help="comma-separated ms (default: percentiles of the space's range)")
    parser.add_argument("--space", default="search_space/default.yaml")
    parser.add_argument("--supernet_epochs", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=50, help="training epochs of every chosen network")
    parser.add_argument("--qat_epochs", type=int, default=3)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "search_vs_random_camvid")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.sources import open_source
    from mobileseg.deploy.export_run import environment

    args.work_dir.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else None
    num_classes = open_source(args.data).num_classes
    table = build_table(args.space, num_classes, args.work_dir)
    if results is None:
        targets = ([float(t) for t in args.targets.split(",")] if args.targets
                   else default_targets(args.space, num_classes, table))
        results = {"rows": [], "targets_ms": targets, "space": args.space, "size": SIZE, "recipe": RECIPE,
                   "epochs": args.epochs, "qat_epochs": args.qat_epochs, "supernet_epochs": args.supernet_epochs,
                   "targets_rule": f"percentiles {PERCENTILES} of 300 seeded random networks' predicted ms"
                   if not args.targets else "given", "latency": "LiteRT on this CPU, 1 thread, thread CPU clock",
                   "command": " ".join(["python", "benchmarks/search_vs_random_camvid.py", *sys.argv[1:]]),
                   "versions": versions(), "machine": environment()}
    done = {(r["target_ms"], r["strategy"], r["seed"]) for r in results["rows"]}
    for seed in args.seed or [0]:
        for target in results["targets_ms"]:
            for strategy in STRATEGIES:
                if (target, strategy, seed) in done:
                    continue
                started = time.time()
                row = measure(strategy, target, seed, args, table)
                row["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
                results["rows"].append(row)
                write_atomic(RESULTS, json.dumps(results, indent=2) + "\n")
                print(f"{strategy} {target:g} ms seed {seed}: int8 test mIoU {100 * row['test_miou']:.1f}, "
                      f"{row['int8_ms']:.2f} ms ({time.time() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
