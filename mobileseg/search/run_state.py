"""``DIR/search_state.json``: which stages a search ran, how long each took, and the machine's load."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mobileseg.run.run_dir import RunDir


class RunState:
    """``DIR/search_state.json``: the stages this call ran, their wall time and facts, the machine's load.

    Args:
        run_dir: the run folder.
        stage: the ``--stage`` flag.
    """

    def __init__(self, run_dir: Path, stage: str):
        from mobileseg.provenance import load_average

        self.path = RunDir(run_dir).file(RunDir.SEARCH_STATE)
        self.started = time.perf_counter()
        self.data = {"status": "running", "stage": stage, "started": _now(), "stages": {},
                     "load_average": {"start": load_average()}}

    def done(self, stage: str, started: float, **facts) -> None:
        """Record a finished stage (begun at ``time.perf_counter() == started``), the load at its end; save."""
        from mobileseg.provenance import load_average

        self.data["stages"][stage] = {"seconds": round(time.perf_counter() - started, 1),
                                      "load_average_end": load_average(), **facts}
        self.save()

    def finish(self) -> None:
        """Record the end of the run and save."""
        from mobileseg.provenance import load_average

        self.data.update(status="finished", seconds=round(time.perf_counter() - self.started, 1))
        self.data["load_average"]["end"] = load_average()
        self.save()

    def save(self) -> None:
        """Write the file (atomically), stamped with the time."""
        from mobileseg.atomic_write import write_atomic

        self.data["updated"] = _now()
        write_atomic(self.path, json.dumps(self.data, indent=2) + "\n")

    def timings(self) -> str:
        """``latency 62 s, supernet 95 s, ...`` for the stages this call ran."""
        return ", ".join(f"{name} {stage['seconds']:.0f} s" for name, stage in self.data["stages"].items())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
