"""Benchmark: the pipeline under ``--time_budget`` on CamVid ends within 10% of the budget (issue 21, item 4).

For every ``--budget`` (default 1h and 3h), in a new run folder each, runs
``python -m mobileseg.pipeline --space SPACE --data DATA --target_latency_ms MS --time_budget B`` and
times it from outside (wall clock, the process as a user starts it). One row per budget, from the
run's ``summary.json``: ``time_budget_s``, ``actual_s`` (the wall time), ``stage_seconds`` (each planned
stage's actual seconds, `mobileseg.pipeline_budget.planned_vs_actual`), ``int8_test_miou`` (the int8
file's mIoU on the test split, a fraction) and ``int8_ms`` (its median latency from the bench step);
plus, per row, the plan's ``planned_seconds`` and ``sizes``, the load at its start and end, and the
chosen network's ``genotype`` (kept in the repository by `result_genotypes.keep`, issue 23) and
``composition``.
Writes ``benchmarks/results/time_budget_camvid.json`` (``--out``) after every run, with the command,
versions, machine and load; a budget whose row is already there is not run again.

Usage:
    python benchmarks/time_budget_camvid.py                       # 1h and 3h on CamVid (hours)
    python benchmarks/time_budget_camvid.py --budget 4m --space search_space/demo.yaml \\
        --data synthetic:24 --target_latency_ms 0.05 --out runs/time_budget_demo.json   # minutes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from camvid_runs import CAMVID, ROOT
from result_genotypes import keep


def pipeline_command(args, budget: str, run_dir: Path) -> list[str]:
    """The pipeline run of one budget."""
    return [sys.executable, "-m", "mobileseg.pipeline", "--space", args.space, "--data", args.data,
            "--run_dir", str(run_dir), "--target_latency_ms", f"{args.target_latency_ms:g}",
            "--time_budget", budget, *args.extra]


def row(budget_s: float, wall_s: float, run_dir: Path, load: list) -> dict:
    """One budget's figures from its run folder."""
    summary = json.loads((run_dir / "summary.json").read_text())
    plan = json.loads((run_dir / "plan.json").read_text())
    stages = [r for r in summary["time_plan"] if r["stage"] != "total"]
    return {"time_budget_s": budget_s, "actual_s": round(wall_s, 1),
            "stage_seconds": {r["stage"]: r["actual_s"] for r in stages},
            "int8_test_miou": summary["miou_int8"], "int8_ms": summary["latency_ms"],
            "planned_seconds": {r["stage"]: r["planned_s"] for r in stages}, "sizes": plan["sizes"],
            "within_10_percent": abs(wall_s - budget_s) <= 0.1 * budget_s, "eval_split": summary["split"],
            **keep(run_dir / "arch.yaml", "time_budget_camvid", f"budget_{int(budget_s)}s"),
            "run_dir": str(run_dir), "load_average_start_end": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", action="append", help="a --time_budget (repeat; default 1h and 3h)")
    parser.add_argument("--space", default="search_space/default.yaml")
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    parser.add_argument("--target_latency_ms", type=float, default=20.0)
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "time_budget_camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "time_budget_camvid.json")
    parser.add_argument("extra", nargs="*", help="more pipeline flags, after --")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.provenance import load_average, machine, versions
    from mobileseg.timebudget.duration import parse_duration

    budgets = args.budget or ["1h", "3h"]
    done = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    rows = {r["time_budget_s"]: r for r in done}
    for budget in budgets:
        budget_s = parse_duration(budget)
        if budget_s in rows:
            continue
        run_dir = args.work_dir / f"budget_{int(budget_s)}s"
        command = pipeline_command(args, budget, run_dir)
        load = [load_average()]
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT).returncode
        wall = time.monotonic() - started
        if code:
            print(f"time_budget_camvid.py: error: the pipeline of --time_budget {budget} exited {code} after "
                  f"{wall:.0f} s (its output is above); rows so far are in {args.out}", file=sys.stderr)
            return 1
        rows[budget_s] = row(budget_s, wall, run_dir, [*load, load_average()])
        print(json.dumps({k: rows[budget_s][k] for k in ("time_budget_s", "actual_s", "int8_test_miou", "int8_ms")}),
              flush=True)
        write_atomic(args.out, json.dumps({
            "command": " ".join(["python", "benchmarks/time_budget_camvid.py", *sys.argv[1:]]),
            "pipeline_command": " ".join(["python", *pipeline_command(args, "BUDGET", Path("WORK"))[1:]]),
            "rows": sorted(rows.values(), key=lambda r: r["time_budget_s"]),
            "versions": versions(), "machine": machine(), "load_average_end": load_average()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
