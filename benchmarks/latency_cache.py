"""Benchmark: the persistent latency cache makes a second search of the same space cheap (issue 14, item 4).

Runs the same search twice on this machine, in two new run folders that share one latency
cache (``--latency_cache WORK/cache``): the first measures every block of the space at
184x240, the second finds them all in the cache. ``--strategy random`` keeps the rest of the
search to seconds, so the wall times compare the latency stage. Writes
``benchmarks/results/latency_cache.json`` (per run: wall time, latency stage seconds, blocks
measured, load) from each run's ``search_state.json``.

Usage:
    python benchmarks/latency_cache.py [--work_dir runs/latency_cache]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from camvid_runs import CAMVID, ROOT, versions


def search_command(work: Path, run: str, data: str) -> list[str]:
    return [sys.executable, "-m", "mobileseg.search", "--strategy", "random", "--space", "search_space/default.yaml",
            "--data", data, "--run_dir", str(work / run), "--target_latency_ms", "3", "--clock", "thread_cpu",
            "--references", "none", "--latency_cache", str(work / "cache"), "--noprogress"]


def row(work: Path, run: str, wall: float) -> dict:
    """One run's figures from its ``search_state.json``."""
    stages = json.loads((work / run / "search_state.json").read_text())["stages"]
    return {"run": run, "wall_seconds": round(wall, 1), "latency_stage_seconds": stages["latency"]["seconds"],
            "blocks_measured": stages["latency"]["measured"], "space_blocks": stages["latency"]["space_blocks"],
            "random_stage_seconds": stages["random"]["seconds"],
            "load_average_end": stages["random"]["load_average_end"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "latency_cache")
    parser.add_argument("--data", default=f"camvid:{CAMVID}")
    args = parser.parse_args()
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy.export_run import environment

    rows = []
    for run in ("first", "second"):
        started = time.time()
        subprocess.run(search_command(args.work_dir, run, args.data), cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        rows.append(row(args.work_dir, run, time.time() - started))
        print(json.dumps(rows[-1]), flush=True)
    write_atomic(ROOT / "benchmarks" / "results" / "latency_cache.json", json.dumps({
        "command": " ".join(["python", "benchmarks/latency_cache.py", *sys.argv[1:]]),
        "search_command": " ".join(["python", *search_command(Path("WORK"), "RUN", args.data)[1:]]),
        "rows": rows, "versions": versions(), "machine": environment(), "load_average_end": os.getloadavg()},
        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
