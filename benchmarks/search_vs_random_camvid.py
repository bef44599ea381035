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
   generations unless ``--population`` / ``--generations``). Its ``search_seconds`` are the
   supernet's training (the sum of its epochs, read from its checkpoint, so a supernet trained over
   several sessions counts every epoch once) plus the search stage: what a user searching that one
   target pays.
3. **random** (``--strategy random``): the same population x generations of seeded random
   networks, scored by their predicted latency only; its ``arch.yaml`` is the slowest within the
   target. Its ``search_seconds`` are those of its run.
   **random_supernet** (``--strategy random --random_score supernet``): random search with weight
   sharing, the baseline at the evolutionary search's cost: a copy of the same supernet, then the same
   population x generations of random networks within the target, each scored with NSGA-II's proxy;
   its ``arch.yaml`` is the best proxy mIoU. Its ``search_seconds`` count the supernet as for
   evolutionary.
4. **trained**: every chosen ``arch.yaml`` trained with the recipe of the proxy-ranking ground
   truth (``proxy_rank_camvid.RECIPE``, ``--epochs`` at 184x240), exported to int8 with QAT and
   evaluated on test (``camvid_runs.train_export_evaluate``); ``int8_ms`` is the export
   report's LiteRT median of that int8 file (one thread, thread CPU clock, as the table). The
   profile's file returns a uint8 class map, the table's blocks logits: ``int8_ms`` also counts
   the argmax and the upsampling, for both strategies alike.

Rows go to ``--out`` (default ``benchmarks/results/search_vs_random_camvid.json``) as each network
finishes (``{"rows": [{"target_ms", "strategy", "seed", "predicted_ms", "int8_ms", "test_miou",
"search_seconds"}], ...}``, ``test_miou`` the int8 file's, the float one beside it); a killed
run resumes from it and from the run folders (every step skips what is done); a result written
with other settings (space, data, epochs, search budget or ``--targets``) is refused, not mixed.
Genotypes go next to it, ``genotypes/OUT_STEM/`` (committed for the default ``--out``), and are
what is trained.

``--retime ROUNDS`` (with the flags of the run) only times every row's int8 file again, all interleaved in
one session (`retime`): each row's ``int8_ms`` came right after its own training, at that moment's load.

Example (many hours on the 2-core CPU; run it over several sessions):
    python benchmarks/search_vs_random_camvid.py --seed 0
    python benchmarks/search_vs_random_camvid.py --seed 0 --retime 5     # afterwards, on a quiet machine
A smoke run of every stage (minutes):
    python benchmarks/search_vs_random_camvid.py --data synthetic:24,size=184x240 --space search_space/demo.yaml \
        --targets 1.15,1.3 --supernet_epochs 1 --epochs 1 --qat_epochs 1 --population 4 --generations 2 \
        --work_dir /tmp/svr_smoke/runs --out /tmp/svr_smoke/search_vs_random_camvid.json
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
STRATEGIES = ("evolutionary", "random", "random_supernet")
SUPERNET_STRATEGIES = ("evolutionary", "random_supernet")
"""The strategies that train the supernet (once per seed, copied into each run folder) and count its seconds."""
PERCENTILES = (20, 50, 80)


def build_table(space: str, num_classes: int, work_dir: Path) -> Path:
    """The block table every search of the benchmark predicts with (measured once; resumable)."""
    table = work_dir / "latency_table.json"
    run([sys.executable, "-m", "mobileseg.latency", "build", "--space", space, "--input_size", SIZE,
         "--num_classes", str(num_classes), "--threads", "1", "--clock", "thread_cpu", "--out", str(table),
         "--noprogress"],
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
    return percentile_targets([float(model.latency_ms(loaded.sample(rng))) for _ in range(count)])


def percentile_targets(predicted: list[float]) -> list[float]:
    """The `PERCENTILES` of ``predicted`` (ms), rounded to 0.01 ms.

    Example:
        >>> percentile_targets([float(ms) for ms in range(1, 102)])
        [21.0, 51.0, 81.0]
    """
    import numpy as np

    return [round(float(np.percentile(predicted, p)), 2) for p in PERCENTILES]


def supernet_seconds(run_dir: Path) -> float:
    """The training time of the supernet in ``run_dir``: its epochs' seconds, from its checkpoint's log.

    Not ``search_state.json``: each call of the command rewrites it, and the call for a later target (or a
    resumed session) finds the supernet trained and records a few seconds.
    """
    import numpy as np

    from mobileseg.state_files import META
    from mobileseg.supernet.trainer import CHECKPOINT, FOLDER

    with np.load(run_dir / FOLDER / CHECKPOINT, allow_pickle=False) as data:  # the header only, not the weights
        log = json.loads(str(data[META]))["log"]
    return sum(epoch["seconds"] for epoch in log)


def search(strategy: str, target: float, seed: int, args, table: Path) -> tuple[Path, float]:
    """Run one strategy at one target; its run folder and search seconds (supernet included).

    A finished search is not run again: a second call finds its study done and records a few seconds,
    so its own seconds are kept in ``RUN/benchmark_search.json`` (a search killed midway counts only the
    call that finished it).
    """
    from mobileseg.atomic_write import write_atomic

    base = args.work_dir / f"seed{seed}"
    run_dir = base / f"{strategy}_{target:g}ms"
    supernet_dir = base / "supernet_base"
    searched = run_dir / "benchmark_search.json"
    if not searched.is_file():
        base.mkdir(parents=True, exist_ok=True)  # for its benchmark.log
        flags = ["--space", args.space, "--data", args.data, "--input_size", SIZE, "--seed", str(seed),
                 "--budget", "default", "--references", "none", "--noprogress",
                 "--latency_backend", f"table:{table}", "--target_latency_ms", f"{target:g}"]
        flags += [f for name in ("population", "generations") if getattr(args, name) for f in
                  (f"--{name}", str(getattr(args, name)))]
        if strategy in SUPERNET_STRATEGIES:
            run([sys.executable, "-m", "mobileseg.search", *flags, "--run_dir", str(supernet_dir),
                 "--stage", "supernet", "--supernet_epochs", str(args.supernet_epochs)], base / "benchmark.log")
            if not (run_dir / "supernet").is_dir():  # whole or not at all: a killed copy is made again
                partial = run_dir / "supernet.partial"
                shutil.rmtree(partial, ignore_errors=True)
                shutil.copytree(supernet_dir / "supernet", partial)
                partial.rename(run_dir / "supernet")
            flags += ["--stage", "search", "--supernet_epochs", str(args.supernet_epochs)]
        if strategy != "evolutionary":
            flags += ["--strategy", "random"] + (["--random_score", "supernet"] if strategy == "random_supernet" else [])
        run([sys.executable, "-m", "mobileseg.search", *flags, "--run_dir", str(run_dir)], base / "benchmark.log")
        stages = json.loads((run_dir / "search_state.json").read_text())["stages"]
        write_atomic(searched, json.dumps({"seconds": sum(stage["seconds"] for stage in stages.values())}) + "\n")
    seconds = json.loads(searched.read_text())["seconds"]
    return run_dir, seconds + (supernet_seconds(supernet_dir) if strategy in SUPERNET_STRATEGIES else 0.0)


def measure(strategy: str, target: float, seed: int, args, table: Path) -> dict:
    """One row: search, keep the genotype next to ``--out``, train it, export, test."""
    run_dir, seconds = search(strategy, target, seed, args, table)
    chosen = json.loads((run_dir / "pareto.json").read_text())["chosen"]
    kept = keep(run_dir / "arch.yaml", args.out.stem, f"{strategy}_{target:g}ms_seed{seed}",
                args.out.parent / "genotypes")
    trained = train_export_evaluate(ROOT / kept["genotype"], SIZE, RECIPE, args.epochs, args.qat_epochs,
                                    args.work_dir / "trained", args.data)
    report = json.loads((Path(trained["int8_file"]).parent / "report.json").read_text())
    int8 = next(f for f in report["files"] if Path(f["file"]).name == Path(trained["int8_file"]).name)
    return result_row(strategy, target, seed, seconds, chosen, int8, trained, kept)


def result_row(strategy: str, target: float, seed: int, seconds: float, chosen: dict, int8: dict, trained: dict,
        kept: dict) -> dict:
    """The result row of one network: ``chosen`` from its ``pareto.json``, ``int8`` its export report entry,
    ``trained`` from `camvid_runs.train_export_evaluate`, ``kept`` from `result_genotypes.keep`. A strategy that
    found no network within the target chose one over it (the knee, or the fastest): ``within_target`` false."""
    return {"target_ms": target, "strategy": strategy, "seed": seed, "predicted_ms": chosen["latency_ms"],
            "int8_ms": int8["latency_ms"], "test_miou": trained["int8_test_miou"],
            "search_seconds": round(seconds, 1), "within_target": chosen["latency_ms"] <= target,
            "chosen_reason": chosen["reason"], "float_test_miou": trained["float_test_miou"],
            "best_val_miou": trained["best_val_miou"], "int8_method": trained["int8_method"],
            "xnnpack_partitions": int8.get("xnnpack_partitions"), "proxy_miou": chosen.get("miou"), **kept,
            "commands": trained["commands"]}


def retime(results: dict, work_dir: Path, rounds: int) -> None:
    """Time every row's int8 file again, all in one session, interleaved (`mask_head_camvid.time_rows`): each row
    gains ``int8_ms_interleaved``, and ``results["retimed"]`` says when, in how many rounds, at which load.

    Each row's ``int8_ms`` was measured right after its own training, at whatever load the machine had then, so
    those figures do not compare across rows; these do. Run it on a quiet machine.
    """
    import datetime

    from mask_head_camvid import time_rows

    load = os.getloadavg()
    timed = [{"file": str(work_dir / "trained" / Path(row["genotype"]).stem / "export" / "model_int8.tflite")}
             for row in results["rows"]]
    time_rows(timed, rounds)
    for row, again in zip(results["rows"], timed, strict=True):
        row["int8_ms_interleaved"] = again["ms"]
    results["retimed"] = {"rounds": rounds, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "load_average": {"start": [round(v, 2) for v in load],
                                              "end": [round(v, 2) for v in os.getloadavg()]}}


def changes(previous: dict, settings: dict, targets: list[float] | None) -> list[str]:
    """How a run with ``settings`` and ``targets`` (None: the stored ones) differs from the result ``previous``;
    ``[]`` when it may add rows to it.

    Example:
        >>> changes({"epochs": 50, "targets_ms": [3.0]}, {"epochs": 1}, [3.0, 4.0])
        ['epochs 50 -> 1', 'targets_ms [3.0] -> [3.0, 4.0]']
    """
    changed = [f"{key} {previous.get(key)!r} -> {value!r}" for key, value in settings.items()
               if previous.get(key) != value]
    if targets is not None and targets != previous["targets_ms"]:
        changed.append(f"targets_ms {previous['targets_ms']} -> {targets}")
    return changed


def todo(results: dict, seeds: list[int]) -> list[tuple[int, float, str]]:
    """(seed, target, strategy) of every row ``results`` lacks, in the order they run.

    Example:
        >>> todo({"targets_ms": [1.0, 2.0], "rows": [{"seed": 0, "target_ms": 1.0, "strategy": "evolutionary"}]}, [0])
        [(0, 1.0, 'random'), (0, 1.0, 'random_supernet'), (0, 2.0, 'evolutionary'), (0, 2.0, 'random'), (0, 2.0, 'random_supernet')]
    """
    done = {(r["seed"], r["target_ms"], r["strategy"]) for r in results["rows"]}
    return [(seed, target, strategy) for seed in seeds for target in results["targets_ms"] for strategy in STRATEGIES
            if (seed, target, strategy) not in done]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, action="append", help="repeatable (default: 0)")
    parser.add_argument("--targets", help="comma-separated ms (default: percentiles of the space's range)")
    parser.add_argument("--space", default="search_space/default.yaml")
    parser.add_argument("--supernet_epochs", type=int, default=40)
    parser.add_argument("--population", type=int, help="networks per generation, both strategies (default: the "
                        "search's default budget's)")
    parser.add_argument("--generations", type=int, help="generations, both strategies (default: the budget's)")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs of every chosen network")
    parser.add_argument("--qat_epochs", type=int, default=3)
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "search_vs_random_camvid")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the result file (genotypes go next to it)")
    parser.add_argument("--retime", type=int, metavar="ROUNDS", help="only time every row's int8 file again, "
                        "interleaved in ROUNDS rounds (on a quiet machine), into the rows' int8_ms_interleaved")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.sources import open_source
    from mobileseg.deploy.export_run import environment

    args.work_dir, args.out = args.work_dir.resolve(), args.out.resolve()  # the steps run from the repository
    args.work_dir.mkdir(parents=True, exist_ok=True)
    settings = {"space": args.space, "data": args.data, "size": SIZE, "recipe": RECIPE, "epochs": args.epochs,
                "qat_epochs": args.qat_epochs, "supernet_epochs": args.supernet_epochs,
                "population": args.population, "generations": args.generations}
    given = [float(t) for t in args.targets.split(",")] if args.targets else None
    results = json.loads(args.out.read_text()) if args.out.is_file() else None
    if results is not None and (changed := changes(results, settings, given)):
        parser.error(f"--out {args.out}: written with other settings ({'; '.join(changed)}); its rows would not "
                     "compare: use the same flags or another --out")
    if args.retime:
        if results is None:
            parser.error(f"--retime: {args.out} holds no rows to time")
        retime(results, args.work_dir, args.retime)
        write_atomic(args.out, json.dumps(results, indent=2) + "\n")
        for row in results["rows"]:
            print(f"{row['strategy']} {row['target_ms']:g} ms seed {row['seed']}: {row['int8_ms_interleaved']:.2f} ms "
                  f"(predicted {row['predicted_ms']:.2f})")
        return 0
    num_classes = open_source(args.data).num_classes
    table = build_table(args.space, num_classes, args.work_dir)
    if results is None:
        results = {"rows": [], "targets_ms": given or default_targets(args.space, num_classes, table), **settings,
                   "targets_rule": "given" if given else
                   f"percentiles {PERCENTILES} of 300 seeded random networks' predicted ms",
                   "latency": "LiteRT on this CPU, 1 thread, thread CPU clock",
                   "command": " ".join(["python", "benchmarks/search_vs_random_camvid.py", *sys.argv[1:]]),
                   "versions": versions(), "machine": environment()}
    for seed, target, strategy in todo(results, args.seed or [0]):
        started = time.time()
        row = measure(strategy, target, seed, args, table)
        row["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        results["rows"].append(row)
        write_atomic(args.out, json.dumps(results, indent=2) + "\n")
        print(f"{strategy} {target:g} ms seed {seed}: int8 test mIoU {100 * row['test_miou']:.1f}, "
              f"{row['int8_ms']:.2f} ms ({time.time() - started:.0f} s)", flush=True)
    print(f"{args.out}: {len(results['rows'])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
