"""`RunDir`: one run folder and the name of every file the steps write in it.

All steps of a run share one folder (``--run_dir``; docs/architecture.md, section 2, says which
step writes and reads each file). The names live here, once: a step names a file as
``RunDir.ARCH`` and finds it as ``RunDir(folder).file(RunDir.ARCH)``.

Example:
    >>> run = RunDir("runs/x")
    >>> run.file(RunDir.INT8), run.bench(on_phone=True)
    (PosixPath('runs/x/export/model_int8.tflite'), PosixPath('runs/x/bench/adb.json'))
"""

from __future__ import annotations

import os
from pathlib import Path


class RunDir:
    """A run folder (``path``) and, as class attributes, the names of its files relative to it.

    Args:
        path: the folder (it need not exist yet).
    """

    CONFIG = "config.yaml"
    """One section per step, each with the step's flags resolved."""
    LOCK = ".lock"
    """Held by the command working in the folder (`mobileseg.run_lock`)."""
    LATENCY_TABLE = "latency_table.json"
    """The search's latency table (``--latency_backend local`` or ``adb`` without a file)."""
    SEARCH_STATE = "search_state.json"
    """The stages the search ran, their seconds and the machine's load."""
    PARETO_JSON = "pareto.json"
    PARETO_PNG = "pareto.png"
    ARCH = "arch.yaml"
    """The network the search chose, which training trains."""
    MODEL = "model.keras"
    """The best validated training checkpoint."""
    LAST = "last.keras"
    """The last training checkpoint, with the optimizer state (training resumes from it)."""
    TRAIN_STATE = "train_state.json"
    """Where training is: epoch, optimizer step, best mIoU, status, the settings a resumed run must share."""
    TRAIN_LOG = "train_log.jsonl"
    """One JSON line per completed training epoch."""
    TENSORBOARD = "tensorboard"
    """The folder of training's TensorBoard logs (``train/``, ``validation/``)."""
    INT8 = "export/model_int8.tflite"
    EXPORT_REPORT = "export/report.json"
    BENCH_LOCAL = "bench/local.json"
    BENCH_ADB = "bench/adb.json"
    BENCHES = (BENCH_LOCAL, BENCH_ADB)
    """The bench results a run may hold: this CPU's, a phone's."""
    PLAN = "plan.json"
    """The time plan of ``--time_budget`` or ``--dry_run`` (`mobileseg.timebudget.time_plan`)."""
    SUMMARY = "summary.json"
    """The pipeline's summary."""
    REPORT_HTML = "report.html"
    """The run report (``python -m mobileseg.report``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of the file ``name`` (one of the class attributes) in this folder."""
        return self.path / name

    def bench(self, on_phone: bool) -> Path:
        """Where the bench step writes: `BENCH_ADB` on a phone, else `BENCH_LOCAL`."""
        return self.file(self.BENCH_ADB if on_phone else self.BENCH_LOCAL)
