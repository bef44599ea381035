"""The pipeline's steps: each step's command line (`COMMANDS`), when a step is done, and running them.

`run_steps` runs ``search``, ``train``, ``export`` and ``bench`` in order as subprocesses, skipping a
step whose outputs are complete (`step_done`) unless a step before it ran now; `write_report` runs
``python -m mobileseg.report`` after the summary. A step that fails raises `StepFailed`, which
carries the pipeline's exit code.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mobileseg.pipeline_settings import STEPS, PipelineError, PipelineSettings, size_text
from mobileseg.run.exit_codes import EXIT_FAILED, MEANINGS
from mobileseg.run.run_dir import RunDir
from mobileseg.run_lock import RunLock


def _optional(**flags) -> list[str]:
    return [part for name, value in flags.items() if value is not None for part in (f"--{name}", str(value))]


def search_command(s: PipelineSettings) -> list[str]:
    """``python -m mobileseg.search``: latency table, supernet, NSGA-II, ``pareto.*`` and ``arch.yaml``.

    Example:
        >>> search_command(PipelineSettings(Path("demo.yaml"), "synthetic:8", Path("runs/x"), 5.0))[3:13]
        ['--space', 'demo.yaml', '--data', 'synthetic:8', '--run_dir', 'runs/x', '--target_latency_ms', '5', \
'--latency_backend', 'local']
    """
    return [sys.executable, "-m", "mobileseg.search", "--space", str(s.space), "--data", s.data,
            "--run_dir", str(s.run_dir), "--target_latency_ms", f"{s.target_latency_ms:g}",
            "--latency_backend", s.latency_backend, "--threads", str(s.threads), "--stage", "all",
            "--batch_size", str(s.batch_size), "--seed", str(s.seed),
            *_optional(serial=s.serial, input_size=s.search_input_size and size_text(s.search_input_size),
                       supernet_epochs=s.supernet_epochs, population=s.population, generations=s.generations,
                       references=s.references, time_plan=_time_plan(s))]


def searched_size(run_dir: Path) -> tuple[tuple[int, int], float]:
    """The search's resolved input size and image scale, from the ``search`` section of ``DIR/config.yaml``.

    Raises:
        PipelineError: the section lacks them.
    """
    from mobileseg.run.run_config import read_config
    from mobileseg.training.errors import TrainingError

    search = read_config(run_dir, error=TrainingError).get("search") or {}
    size, scale = search.get("input_size"), search.get("search_scale")
    if not (isinstance(size, list) and len(size) == 2 and isinstance(scale, (int, float))):
        raise PipelineError(f"{RunDir(run_dir).file(RunDir.CONFIG)}: its search section has no input_size and "
                            "search_scale; was arch.yaml written by python -m mobileseg.search?")
    return (int(size[0]), int(size[1])), float(scale)


def init_flag(run_dir: Path) -> list[str]:
    """``--init supernet:DIR`` when the search trained a supernet in DIR, else nothing.

    The network then starts from the weights it inherits from the supernet, as once-for-all
    fine-tunes: on CamVid it led the from-scratch run over the first five of ten epochs from
    supernets of 2 and 5 epochs (``benchmarks/results/init_from_supernet_camvid.json``; the
    README says how far the figures go). A training already started in DIR keeps the ``--init``
    it started with, so that it resumes.
    """
    from mobileseg.supernet.trainer import CHECKPOINT, FOLDER
    from mobileseg.run.run_config import read_config
    from mobileseg.training.errors import TrainingError

    started = read_config(run_dir, error=TrainingError).get("train")
    if started is not None:
        return ["--init", started["init"]] if started.get("init") else []
    return ["--init", f"supernet:{run_dir}"] if (run_dir / FOLDER / CHECKPOINT).is_file() else []


def train_command(s: PipelineSettings) -> list[str]:
    """``python -m mobileseg.train`` on ``arch.yaml``, the way the search trained its supernet.

    The model is saved and validated at the search's input size (the size its latency was
    predicted at), on crops of ``--input_size`` (default: that size) from images rescaled like
    the supernet's (the search's scale times 0.5 to 2), starting from the supernet's weights
    (`init_flag`).
    """
    size, scale = searched_size(s.run_dir)
    arch = RunDir(s.run_dir).file(RunDir.ARCH)
    return [sys.executable, "-m", "mobileseg.train", "--arch", str(arch), "--data", s.data,
            "--run_dir", str(s.run_dir), "--epochs", str(s.train_epochs),
            "--input_size", size_text(s.input_size or size),
            "--model_size", size_text(size), "--val_size", size_text(size),
            "--scale_range", f"{0.5 * scale:.4g},{2 * scale:.4g}", "--batch_size", str(s.batch_size),
            "--seed", str(s.seed), "--verbose", "2", *init_flag(s.run_dir),
            *_optional(time_plan=_time_plan(s))]


def _time_plan(s: PipelineSettings) -> str | None:
    """``DIR/plan.json`` when the run has a time budget (the steps keep to its deadlines)."""
    return str(RunDir(s.run_dir).file(RunDir.PLAN)) if s.time_budget else None


def export_command(s: PipelineSettings) -> list[str]:
    """``python -m mobileseg.export --int8`` after ``--qat_epochs`` of quantization-aware fine-tuning."""
    return [sys.executable, "-m", "mobileseg.export", "--run_dir", str(s.run_dir), "--int8",
            "--qat_epochs", str(s.qat_epochs), "--batch_size", str(s.batch_size), "--split", s.eval_split,
            "--threads", str(s.threads), "--seed", str(s.seed)]


def bench_command(s: PipelineSettings) -> list[str]:
    """``python -m mobileseg.bench`` on the int8 file: on this CPU, or on the phone of an adb backend.

    Example:
        >>> bench_command(PipelineSettings(Path("demo.yaml"), "synthetic:8", Path("runs/x"), 5.0))[3:]
        ['--model', 'runs/x/export/model_int8.tflite', '--threads', '1', '--out', 'runs/x/bench/local.json']
    """
    phone = ["--adb", *_optional(serial=s.serial)] if s.on_phone else []
    model = RunDir(s.run_dir).file(RunDir.INT8)
    return [sys.executable, "-m", "mobileseg.bench", "--model", str(model), "--threads", str(s.threads),
            *phone, "--out", str(s.bench_json)]


def report_command(s: PipelineSettings) -> list[str]:
    """``python -m mobileseg.report``: the run report, ``DIR/report.html`` (written after the summary).

    Example:
        >>> report_command(PipelineSettings(Path("demo.yaml"), "synthetic:8", Path("runs/x"), 5.0))[1:]
        ['-m', 'mobileseg.report', '--run_dir', 'runs/x']
    """
    return [sys.executable, "-m", "mobileseg.report", "--run_dir", str(s.run_dir)]


COMMANDS: dict[str, Callable[[PipelineSettings], list[str]]] = {
    "search": search_command, "train": train_command, "export": export_command, "bench": bench_command,
    "report": report_command}
"""Each step's command line, built when the step starts (a test may substitute any of them; without
``report`` no run report is written)."""


def read_json_dict(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def train_finished(run_dir: Path, epochs: int) -> bool:
    """True when DIR holds ``model.keras`` and a ``train_state.json`` finished at ``epochs`` or more, or cut by
    the time budget.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "model.keras").write_bytes(b"")
        >>> _ = (folder / "train_state.json").write_text('{"status": "finished", "epoch": 3}')
        >>> train_finished(folder, 3), train_finished(folder, 4)
        (True, False)
    """
    from mobileseg.timebudget.deadline import CUT

    run = RunDir(run_dir)
    state = read_json_dict(run.file(RunDir.TRAIN_STATE)) or {}
    cut = state.get("status") == "stopped" and CUT in str(state.get("message"))
    finished = state.get("status") == "finished" and isinstance(state.get("epoch"), int) and state["epoch"] >= epochs
    return run.file(RunDir.MODEL).is_file() and (cut or finished)


def step_done(step: str, settings: PipelineSettings) -> bool:
    """True when `step`'s outputs are complete in the run folder (so it can be skipped)."""
    run = RunDir(settings.run_dir)
    if step == "search":
        return run.file(RunDir.ARCH).is_file() and run.file(RunDir.PARETO_JSON).is_file()
    if step == "train":
        return train_finished(run.path, settings.train_epochs)
    if step == "export":
        return run.file(RunDir.INT8).is_file() and run.file(RunDir.EXPORT_REPORT).is_file()
    if step == "bench":
        return settings.bench_json.is_file()
    raise KeyError(step)


@dataclasses.dataclass
class StepFailed(Exception):
    """A step exited non-zero (or exited 0 without writing its outputs: `returncode` 0)."""

    step: str
    returncode: int
    run_dir: Path

    def __str__(self) -> str:
        if self.returncode == 0:
            how = f"exited 0 but its outputs are not all in {self.run_dir}"
        elif self.returncode < 0:
            how = f"was killed by signal {-self.returncode}"
        else:
            what = f" ({MEANINGS[self.returncode]})" if self.returncode in MEANINGS else ""
            how = f"failed with exit code {self.returncode}{what}"
        return (f"step {self.step} {how}; its output is above. Run the same command again once fixed: "
                "finished steps are skipped and this one resumes")

    @property
    def exit_code(self) -> int:
        """The pipeline's exit code: the step's own 2 or 3 (`MEANINGS`), otherwise 1."""
        return self.returncode if self.returncode in MEANINGS else EXIT_FAILED


def run_steps(settings: PipelineSettings, commands: Mapping[str, Callable[[PipelineSettings], Sequence[str]]],
              log: Callable[[str], None] = print, lock: RunLock | None = None,
              before: Callable[[str, PipelineSettings], PipelineSettings] | None = None) -> dict[str, dict]:
    """Run the steps in order, skipping finished ones; returns ``{step: {"ran": bool, "seconds": s}}``.

    A step is skipped when `step_done` says so and no step before it ran now (its inputs may
    have changed). Its command line is built when it starts (it may read what the steps before
    it wrote), from the settings ``before(step, settings)`` returns when given (the time budget
    sizes the training there), and its output goes straight to this process's stdout and stderr.
    With ``lock`` (the run folder's, held by this process) each step works in the folder under it.

    Raises:
        StepFailed: a step exited non-zero, or without its outputs; later steps did not run.
        PipelineError: a step's command line could not be built from the run folder.
    """
    record: dict[str, dict] = {}
    rerun = False
    for step in STEPS:
        if not rerun and step_done(step, settings):
            log(f"== {step}: done already in {settings.run_dir}, skipped")
            record[step] = {"ran": False, "seconds": 0.0}
            continue
        if before is not None:
            settings = before(step, settings)
        command = list(commands[step](settings))
        log(f"== {step}: {' '.join(command)}")
        sys.stdout.flush()
        started = time.monotonic()
        returncode = subprocess.run(command, check=False, **(lock.subprocess_kwargs() if lock else {})).returncode
        seconds = round(time.monotonic() - started, 1)
        if returncode != 0 or not step_done(step, settings):
            raise StepFailed(step, returncode, settings.run_dir)
        log(f"== {step}: done in {duration(seconds)}")
        record[step] = {"ran": True, "seconds": seconds}
        rerun = True
    return record


def write_report(settings: PipelineSettings, commands: Mapping[str, Callable[[PipelineSettings], Sequence[str]]],
                 steps: Mapping[str, dict], log: Callable[[str], None] = print) -> None:
    """Run ``commands["report"]`` (`report_command`) unless no step ran and ``DIR/report.html`` exists.

    A report that fails is said, not fatal: the run's own outputs are complete by then.
    """
    report = RunDir(settings.run_dir).file(RunDir.REPORT_HTML)
    if "report" not in commands or (report.is_file() and not any(step["ran"] for step in steps.values())):
        return
    command = list(commands["report"](settings))
    log(f"== report: {' '.join(command)}")
    sys.stdout.flush()
    returncode = subprocess.run(command, check=False).returncode
    if returncode != 0:
        log(f"== report: failed (exit {returncode}); the run's outputs are complete, see {settings.run_dir}")



def duration(seconds: float) -> str:
    """Seconds as ``1m15s``, or ``42.0s`` under a minute.

    Example:
        >>> duration(75.0), duration(42.0)
        ('1m15s', '42.0s')
    """
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"

