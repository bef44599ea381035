"""``python -m mobileseg.pipeline --space SPACE.yaml --data KIND:PATH --run_dir DIR --target_latency_ms MS``.

One run from a data set to a benchmarked int8 model, in one run folder (docs/architecture.md,
section 1). The steps are the project's own commands, each run as a subprocess
whose output streams through:

1. ``search``: ``python -m mobileseg.search`` measures the space's blocks, trains the
   weight-sharing supernet, runs NSGA-II under the latency target and writes ``pareto.json``,
   ``pareto.png`` and the chosen ``arch.yaml``, all at the search's input size
   (``--search_input_size``, default half the images' size): the size the model ships at;
2. ``train``: ``python -m mobileseg.train`` trains ``arch.yaml`` into ``model.keras``, saved and
   validated at that size, on crops (``--input_size``, default that size) of images rescaled
   as the supernet's were (both read from the ``search`` section of ``DIR/config.yaml``),
   starting from the weights the network inherits from the supernet (``--init supernet:DIR``);
3. ``export``: ``python -m mobileseg.export --int8 --qat_epochs N`` quantization-aware
   fine-tunes it, writes ``export/model_int8.tflite`` and ``export/report.json`` with the
   float and int8 mIoU on the test split (the val split when there is no test split);
4. ``bench``: ``python -m mobileseg.bench`` times the int8 file with LiteRT on this CPU
   (``bench/local.json``), or on the phone with ``--latency_backend adb`` (``bench/adb.json``).

The search's budget (``--supernet_epochs``, ``--population``, ``--generations``,
``--references``) defaults to its ``--budget auto``: minutes for fewer than 100 training
images, hours above.

``--time_budget 2h`` sizes all of it to fit and prints the plan first (`mobileseg.pipeline_budget`:
``DIR/plan.json``, each step's stages cut at an epoch or generation boundary past their deadline, and
the summary's planned against actual seconds); ``--dry_run`` prints the plan and stops.

A step whose outputs are already in DIR is skipped (``search``: ``arch.yaml`` and
``pareto.json``; ``train``: ``model.keras`` and ``train_state.json`` finished with at least
``--train_epochs`` epochs; ``export``: ``model_int8.tflite`` and ``report.json``; ``bench``: its
JSON), unless a step before it ran in this invocation. A step left half done goes on: the
search keeps its measured blocks, supernet epochs and trials, training resumes after its last
epoch (export and bench, minutes at most, start over). So the same command, run again after an
interruption, picks up where it stopped, and a larger ``--train_epochs`` trains on.

The inputs (space file, data set and its splits, target, sizes against the space's output
stride, latency backend) are checked before any step starts; ``DIR/config.yaml`` gets a
``pipeline`` section, and a DIR holding a run of another space, data set or search size is
refused. At the end a summary table gives the searched network, the float and int8 mIoU, the
int8 latency against the target, the file size, and where every file is; it is also written
to ``DIR/summary.json``. Then ``python -m mobileseg.report`` writes the run report,
``DIR/report.html`` (`write_report`; kept when no step ran).

The pipeline holds DIR's lock (`mobileseg.run_lock`) from its checks to its summary, and its steps
work under it: another command on DIR is refused while it runs (exit 2, its pid named).

Exit codes: 0 done, 2 bad input (the pipeline's, or a step's: the step is named; a DIR another
command is running in), 1 a step failed (or the disk is full), 3 the phone was lost (search with
``--latency_backend adb``).

Example:
    python -m mobileseg.pipeline --space search_space/default.yaml \\
        --data camvid:../shared/datasets/camvid --run_dir runs/camvid_pipeline --target_latency_ms 20
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mobileseg.run.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, MEANINGS, BadInput
from mobileseg.run.latency_backend import parse_latency_backend
from mobileseg.run.run_dir import RunDir
from mobileseg.run_lock import RunLock

STEPS = ("search", "train", "export", "bench")
"""The steps, in the order they run."""


class PipelineError(Exception):
    """The run folder is not as a step left it (e.g. a step's recorded settings are missing)."""


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """What one pipeline run does (the flags).

    Args:
        space: the search space file.
        data: the data set, ``KIND:PATH``.
        run_dir: the run folder.
        target_latency_ms: the search's latency target for the int8 model.
        eval_split: the split the export evaluates (``test``, or ``val`` when there is none).
        search_input_size: (height, width) the search trains the supernet and predicts latency at,
            and the size the model ships at; None: the search's default (half the images' size).
        input_size: training crop (height, width); None: the search's size.
        supernet_epochs, population, generations, references: the search's budget; None: its
            ``--budget auto`` (minutes below 100 training images, hours above).
        train_epochs, batch_size: training (``batch_size`` also for the supernet and QAT).
        qat_epochs: quantization-aware fine-tuning epochs.
        threads: LiteRT threads (search latency, export timing, bench).
        latency_backend: ``local[:FILE]``, ``adb[:FILE]`` or ``table:FILE`` (`mobileseg.run.latency_backend`).
        serial: the phone for an adb backend (None: the only one connected).
        seed: seeds every step.
        time_budget: the run's time budget as given (``2h``; `mobileseg.pipeline_budget`), or None.
        dry_run: print the plan, write ``plan.json`` and stop.
    """

    space: Path
    data: str
    run_dir: Path
    target_latency_ms: float
    eval_split: str = "test"
    search_input_size: tuple[int, int] | None = None
    input_size: tuple[int, int] | None = None
    supernet_epochs: int | None = None
    population: int | None = None
    generations: int | None = None
    references: str | None = None
    train_epochs: int = 100
    batch_size: int = 8
    qat_epochs: int = 3
    threads: int = 1
    latency_backend: str = "local"
    serial: str | None = None
    seed: int = 0
    time_budget: str | None = None
    dry_run: bool = False

    @property
    def bench_json(self) -> Path:
        """Where the bench step writes: ``bench/adb.json`` on a phone, else ``bench/local.json``."""
        return RunDir(self.run_dir).bench(self.on_phone)

    @property
    def on_phone(self) -> bool:
        """True when latency is measured on an Android phone."""
        return parse_latency_backend(self.latency_backend).on_phone


def _size(size) -> str:
    return f"{size[0]}x{size[1]}"


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
            *_optional(serial=s.serial, input_size=s.search_input_size and _size(s.search_input_size),
                       supernet_epochs=s.supernet_epochs, population=s.population, generations=s.generations,
                       references=s.references, time_plan=_time_plan(s))]


def searched_size(run_dir: Path) -> tuple[tuple[int, int], float]:
    """The search's resolved input size and image scale, from the ``search`` section of ``DIR/config.yaml``.

    Raises:
        PipelineError: the section lacks them.
    """
    from mobileseg.training.run_config import read_config

    search = read_config(run_dir).get("search") or {}
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
    from mobileseg.training.run_config import read_config

    started = read_config(run_dir).get("train")
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
            "--run_dir", str(s.run_dir), "--epochs", str(s.train_epochs), "--input_size", _size(s.input_size or size),
            "--model_size", _size(size), "--val_size", _size(size),
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


def _read_json(path: Path) -> dict | None:
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
    state = _read_json(run.file(RunDir.TRAIN_STATE)) or {}
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
              log: Callable[[str], None] = print, lock: RunLock | None = None) -> dict[str, dict]:
    """Run the steps in order, skipping finished ones; returns ``{step: {"ran": bool, "seconds": s}}``.

    A step is skipped when `step_done` says so and no step before it ran now (its inputs may
    have changed). Its command line is built when it starts (it may read what the steps before
    it wrote) and its output goes straight to this process's stdout and stderr. With ``lock``
    (the run folder's, held by this process) each step works in the folder under it.

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
        command = list(commands[step](settings))
        log(f"== {step}: {' '.join(command)}")
        sys.stdout.flush()
        started = time.monotonic()
        returncode = subprocess.run(command, check=False, **(lock.subprocess_kwargs() if lock else {})).returncode
        seconds = round(time.monotonic() - started, 1)
        if returncode != 0 or not step_done(step, settings):
            raise StepFailed(step, returncode, settings.run_dir)
        log(f"== {step}: done in {_duration(seconds)}")
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


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def summarize(settings: PipelineSettings, steps: Mapping[str, dict] | None = None) -> dict:
    """The run's results, read from its files: mIoU float and int8, latency, size, file paths.

    Values a file does not hold are None.
    """
    run = RunDir(settings.run_dir)
    report = _read_json(run.file(RunDir.EXPORT_REPORT)) or {}
    float_entry = report.get("float") or {}
    int8_name = Path(RunDir.INT8).name
    int8 = next((e for e in report.get("files", []) if Path(str(e.get("file"))).name == int8_name), {})
    bench = _read_json(settings.bench_json) or {}
    device = (bench.get("devices") or [{}])[0]
    record = next((r for r in device.get("records", []) if Path(str(r.get("model"))).name == int8_name), {})
    fingerprint = device.get("fingerprint") or {}
    latency = record.get("median_ms")
    int8_path = run.file(RunDir.INT8)
    chosen = (_read_json(run.file(RunDir.PARETO_JSON)) or {}).get("chosen") or {}
    return {
        "run_dir": str(run.path),
        "space": str(settings.space), "data": settings.data, "split": report.get("split"),
        "arch_name": _arch_name(run.file(RunDir.ARCH)), "search_reason": chosen.get("reason"),
        "search_latency_ms": chosen.get("latency_ms"), "search_miou": chosen.get("miou"),
        "composition": chosen.get("composition"),
        "latency_error_pct": _error_pct(chosen.get("latency_ms"), latency),
        "eval_images": float_entry.get("images"),
        "miou_float": float_entry.get("miou"), "miou_int8": int8.get("miou"),
        "latency_ms": latency, "threads": record.get("threads"),
        "device": fingerprint.get("cpu") or fingerprint.get("model") or fingerprint.get("serial"),
        "target_latency_ms": settings.target_latency_ms,
        "meets_target": None if latency is None else latency <= settings.target_latency_ms,
        "size_mb": round(int8_path.stat().st_size / 2 ** 20, 3) if int8_path.is_file() else None,
        "files": {
            "Pareto plot": str(run.file(RunDir.PARETO_PNG)), "Pareto front": str(run.file(RunDir.PARETO_JSON)),
            "architecture": str(run.file(RunDir.ARCH)), "float model": str(run.file(RunDir.MODEL)),
            "int8 TFLite": str(int8_path), "export report": str(run.file(RunDir.EXPORT_REPORT)),
            "benchmark": str(settings.bench_json), "run report": str(run.file(RunDir.REPORT_HTML)),
        },
        "steps": dict(steps or {}),
    }


def _error_pct(predicted: float | None, measured: float | None) -> float | None:
    """How far the search's prediction of the shipped network was from its measured latency, in %.

    Example:
        >>> _error_pct(2.0, 2.5), _error_pct(None, 2.5)
        (25.0, None)
    """
    if predicted is None or measured is None or predicted <= 0:
        return None
    return round(100 * (measured - predicted) / predicted, 2)


def record_measured_latency(run_dir: Path, summary: dict) -> None:
    """Write the shipped network's measured latency and the prediction's error into ``pareto.json``."""
    from mobileseg.atomic_write import write_atomic

    path = RunDir(run_dir).file(RunDir.PARETO_JSON)
    report = _read_json(path)
    if not report or not isinstance(report.get("chosen"), dict) or summary.get("latency_ms") is None:
        return
    report["chosen"].update(measured_ms=summary["latency_ms"], measured_threads=summary.get("threads"),
                            measured_device=summary.get("device"), latency_error_pct=summary["latency_error_pct"])
    write_atomic(path, json.dumps(report, indent=2) + "\n")


def _arch_name(path: Path) -> str | None:
    from mobileseg.bounded_yaml import read_yaml
    from mobileseg.text_files import TextFileError

    try:
        data = read_yaml(path)
    except TextFileError:
        return None
    return data.get("name") if isinstance(data, dict) else None


def format_summary(summary: dict) -> str:
    """The summary as a two-column table, the files last.

    Example:
        >>> print(format_summary({"run_dir": "r", "arch_name": "demo_trial3", "search_reason": "the knee",
        ...     "search_latency_ms": 1.2, "search_miou": 0.3, "split": "test", "eval_images": 2,
        ...     "miou_float": 0.5, "miou_int8": 0.25, "latency_ms": 1.5, "threads": 1, "device": "X",
        ...     "target_latency_ms": 2.0, "meets_target": True, "size_mb": 0.031,
        ...     "files": {"Pareto plot": "r/pareto.png"},
        ...     "steps": {"search": {"ran": False, "seconds": 0.0}, "train": {"ran": True, "seconds": 75.0}}}))
        summary of r
          searched network             demo_trial3: the knee (predicted 1.200 ms, proxy mIoU 30.00 %)
          composition                  -
          mIoU float (test, 2 images)  50.00 %
          mIoU int8 (test, 2 images)   25.00 %
          int8 latency                 1.500 ms median, 1 thread(s), X (target 2 ms: met)
          int8 size                    0.031 MB
          steps                        search skipped, train 1m15s
          Pareto plot                  r/pareto.png (missing)
    """
    from mobileseg.timebudget.time_plan import format_planned_vs_actual

    def percent(value):
        return "-" if value is None else f"{100 * value:.2f} %"

    where = f"({summary.get('split') or '-'}, {summary.get('eval_images') or '-'} images)"
    if summary.get("latency_ms") is None:
        latency = "-"
    else:
        verdict = "met" if summary["meets_target"] else "MISSED"
        latency = (f"{summary['latency_ms']:.3f} ms median, {summary['threads']} thread(s), {summary['device']} "
                   f"(target {summary['target_latency_ms']:g} ms: {verdict})")
    steps = ", ".join(f"{step} {_duration(info['seconds'])}" if info["ran"] else f"{step} skipped"
                      for step, info in summary.get("steps", {}).items())
    searched = summary.get("arch_name") or "-"
    if summary.get("search_latency_ms") is not None:
        searched += (f": {summary['search_reason']} (predicted {summary['search_latency_ms']:.3f} ms, "
                     f"proxy mIoU {percent(summary.get('search_miou'))})")
    if summary.get("latency_error_pct") is not None:
        latency += f"; predicted {summary['search_latency_ms']:.3f} ms, error {summary['latency_error_pct']:+.1f} %"
    rows = [("searched network", searched), ("composition", summary.get("composition") or "-"),
            (f"mIoU float {where}", percent(summary.get("miou_float"))),
            (f"mIoU int8 {where}", percent(summary.get("miou_int8"))),
            ("int8 latency", latency),
            ("int8 size", "-" if summary.get("size_mb") is None else f"{summary['size_mb']:.3f} MB"),
            ("steps", steps or "-"),
            *([("time planned / actual", format_planned_vs_actual(summary["time_plan"]))]
              if summary.get("time_plan") else []),
            *((name, path if Path(path).exists() else f"{path} (missing)") for name, path in summary["files"].items())]
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"summary of {summary['run_dir']}", *(f"  {name.ljust(width)}  {value}" for name, value in rows)])


def _space_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_inputs(settings: PipelineSettings) -> PipelineSettings:
    """Check the pipeline's inputs before any step starts (each step checks its own again).

    Returns:
        The settings with ``eval_split`` resolved from the data set's splits.

    Raises:
        BadInput: the message names the flag (or file) and the problem.
    """
    import numpy as np

    from mobileseg.arch.schema_io import GenotypeError
    from mobileseg.arch.space import SearchSpace
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source
    from mobileseg.run.sizes import check_size, logits_stride

    if not settings.target_latency_ms > 0:
        raise BadInput(f"--target_latency_ms {settings.target_latency_ms:g}: must be a positive number of ms")
    try:
        space = SearchSpace.load(settings.space)
    except GenotypeError as error:
        raise BadInput(f"--space: {error}") from None
    stride = logits_stride(space.sample(np.random.default_rng(0)))
    for flag, size in (("--search_input_size", settings.search_input_size), ("--input_size", settings.input_size)):
        if size is not None:
            check_size(flag, size, stride, f"the space {settings.space}")
    try:
        source = open_source(settings.data)
        splits = source.splits()
        missing = [split for split in ("train", "val") if split not in splits]
        if missing:
            raise BadInput(f"--data {settings.data}: no {' and no '.join(missing)} split (it has: "
                           f"{', '.join(splits) or 'none'}); search and training need train and val")
        train_pairs = len(source.pairs("train"))
    except DataError as error:
        message = str(error)
        if not message.startswith("--data"):
            message = f"--data {message}" if message.startswith(settings.data) else f"--data {settings.data}: {message}"
        raise BadInput(message) from None
    if train_pairs < settings.batch_size:
        raise BadInput(f"--batch_size {settings.batch_size}: {settings.data} has only {train_pairs} training "
                       "images; lower it or use more data")
    backend = parse_latency_backend(settings.latency_backend)
    if not backend.measures and not Path(backend.path).is_file():
        raise BadInput(f"--latency_backend {settings.latency_backend}: no such file {backend.path}")
    if settings.serial and not backend.on_phone:
        raise BadInput("--serial needs --latency_backend adb")
    _check_same_run(settings)
    return dataclasses.replace(settings, eval_split="test" if "test" in splits else "val")


def _check_same_run(settings: PipelineSettings) -> None:
    """Refuse a run folder whose finished steps came from another space, data set or search size."""
    from mobileseg.training.errors import TrainingError
    from mobileseg.training.run_config import read_config

    try:
        config = read_config(settings.run_dir)
    except TrainingError as error:
        raise BadInput(f"--run_dir: {error}") from None
    previous = config.get("pipeline") or {}
    if previous.get("space_sha256") not in (None, _space_digest(settings.space)):
        raise BadInput(f"--space {settings.space}: {settings.run_dir} holds a run of another space "
                       f"({previous.get('space')}); use a new --run_dir")
    if previous.get("data") not in (None, settings.data):
        raise BadInput(f"--data {settings.data}: {settings.run_dir} holds a run on {previous.get('data')}; "
                       "use a new --run_dir")
    searched = (config.get("search") or {}).get("input_size")
    if settings.search_input_size and searched and list(settings.search_input_size) != searched:
        raise BadInput(f"--search_input_size {_size(settings.search_input_size)}: {settings.run_dir} holds a "
                       f"search at {_size(searched)}; use a new --run_dir")


def record_settings(settings: PipelineSettings) -> None:
    """Write the ``pipeline`` section of ``DIR/config.yaml`` (other steps' sections are kept)."""
    from mobileseg.training.run_config import record_config

    values = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    values.update(space=str(settings.space), run_dir=str(settings.run_dir),
                  space_sha256=_space_digest(settings.space))
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    record_config(settings.run_dir, "pipeline", values)


def run_pipeline(settings: PipelineSettings,
                 commands: Mapping[str, Callable[[PipelineSettings], Sequence[str]]] = COMMANDS,
                 log: Callable[[str], None] = print, explicit: Mapping[str, int | None] | None = None) -> int:
    """Check the inputs, [plan,] run the steps, print and write the summary; returns the exit code.

    Args:
        settings: the run.
        commands: each step's command line builder (default: `COMMANDS`); tests substitute them.
        log: where progress lines and the summary go.
        explicit: with a time budget, the sizes given on the command line (`mobileseg.pipeline_budget.SIZES`).
    """
    from mobileseg.atomic_write import AtomicWriteError, write_atomic
    from mobileseg.pipeline_budget import plan_pipeline, planned_vs_actual
    from mobileseg.run_lock import RunLockError, hold
    from mobileseg.timebudget.split import BudgetTooSmall

    def fail(error: Exception, code: int) -> int:
        print(f"mobileseg.pipeline: error: {error}", file=sys.stderr)
        return code

    try:
        with hold(settings.run_dir, "mobileseg.pipeline") as lock:
            started = time.time()
            settings = check_inputs(settings)
            if settings.time_budget or settings.dry_run:
                settings, _ = plan_pipeline(settings, search_command(settings)[3:], explicit or {}, started, log)
                if settings.dry_run:
                    return 0
            record_settings(settings)
            steps = run_steps(settings, commands, log, lock)
            summary = summarize(settings, steps)
            summary["time_plan"] = planned_vs_actual(settings.run_dir, steps, time.time() - started)
            record_measured_latency(settings.run_dir, summary)
            write_atomic(RunDir(settings.run_dir).file(RunDir.SUMMARY), json.dumps(summary, indent=2) + "\n")
            write_report(settings, commands, steps, log)
    except (BadInput, RunLockError, BudgetTooSmall) as error:
        return fail(error, EXIT_BAD_INPUT)
    except StepFailed as error:
        return fail(error, error.exit_code)
    except (PipelineError, AtomicWriteError) as error:
        return fail(error, EXIT_FAILED)
    log(format_summary(summary))
    return EXIT_OK


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP

    fv = flags.FLAGS if flag_values is None else flag_values
    defaults = PipelineSettings(Path(), "", Path(), 0.0)

    def define(kind, name, default, help_text, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=fv, **kwargs)

    define("string", "space", None, "Search space YAML file, e.g. search_space/default.yaml.")
    define("string", "data", None, DATA_FLAG_HELP)
    define("string", "run_dir", None, "The run folder (created; a finished step in it is skipped).")
    define("float", "target_latency_ms", None, "Latency target of the int8 model (ms) for the search.")
    define("string", "search_input_size", None, "HEIGHTxWIDTH the search predicts latency at and the model ships "
           "at (default: the search's, half the images' size).")
    define("string", "input_size", None, "Training crop HEIGHTxWIDTH (default: the search's input size).")
    for name, what in (("supernet_epochs", "Supernet training epochs"), ("population", "NSGA-II population"),
                       ("generations", "NSGA-II generations")):
        define("integer", name, None, f"{what} (default: the search's --budget auto).", lower_bound=1)
    define("string", "references", None, "Reference networks on the Pareto plot: all, none, cheapest:K or "
           "FILE,FILE (default: the search's --budget auto).")
    define("integer", "train_epochs", defaults.train_epochs, "Training epochs of the chosen network.",
           lower_bound=1)
    define("integer", "batch_size", defaults.batch_size, "Batch size of the supernet, training and QAT.",
           lower_bound=1)
    define("integer", "qat_epochs", defaults.qat_epochs, "Quantization-aware fine-tuning epochs.", lower_bound=1)
    define("integer", "threads", defaults.threads, "LiteRT threads of every latency.", lower_bound=1)
    define("string", "latency_backend", defaults.latency_backend, "Where the search's latency comes from: "
           "local[:FILE] (LiteRT here), table:FILE (a measured table), adb[:FILE] (a phone, which bench "
           "then times the int8 model on).")
    define("string", "serial", None, "The phone's adb serial (default: the only one connected).")
    define("string", "latency_cache", None, "Folder of the persistent latency cache, or off (default: "
           "$MOBILESEG_LATENCY_CACHE, else ~/.cache/mobileseg): blocks measured before on this device are not "
           "measured again.")
    define("integer", "seed", defaults.seed, "Seeds every step.")
    define("string", "time_budget", None, "Fit the whole run in this time, e.g. 45m, 2h, 8h: the search's and "
           "training's sizes are chosen to fit from a few timed steps (size flags given win), the plan is printed "
           "and written to DIR/plan.json, and a stage that overruns its share stops at an epoch or generation "
           "boundary.")
    define("boolean", "dry_run", False, "Print the plan (stages, sizes, estimated durations; with --time_budget, "
           "sized to it), write DIR/plan.json, and stop.")


def settings_from_flags(fv, argv: Sequence[str]) -> PipelineSettings:
    """The `PipelineSettings` the parsed flags give (not yet checked against the files).

    Raises:
        BadInput: a missing flag, an extra argument or a malformed size.
    """
    from mobileseg.cli_flags import parse_size

    if len(argv) > 1:
        raise BadInput(f"unexpected arguments {list(argv[1:])}")
    missing = [f"--{name}" for name in ("space", "data", "run_dir", "target_latency_ms") if fv[name].value is None]
    if missing:
        raise BadInput(f"{', '.join(missing)} required")
    sizes = {}
    for name in ("search_input_size", "input_size"):
        try:
            sizes[name] = parse_size(fv[name].value) if fv[name].value else None
        except ValueError as error:
            raise BadInput(f"--{name}: {error}") from None
    names = [field.name for field in dataclasses.fields(PipelineSettings)
             if field.name not in ("space", "run_dir", "eval_split", *sizes)]
    return PipelineSettings(space=Path(fv.space), run_dir=Path(fv.run_dir), **sizes,
                            **{name: fv[name].value for name in names})


def run(fv, argv: Sequence[str]) -> int:
    """Run the pipeline the parsed flags describe; returns the exit code."""
    try:
        settings = settings_from_flags(fv, argv)
    except BadInput as error:
        print(f"mobileseg.pipeline: error: {error}", file=sys.stderr)
        return error.exit_code
    from mobileseg.latency.cache import use_folder

    use_folder(fv.latency_cache)  # the steps' subprocesses inherit it
    from mobileseg.pipeline_budget import SIZES

    return run_pipeline(settings, explicit={name: fv[name].value if fv[name].present else None for name in SIZES})


def main() -> None:
    """Entry point of ``python -m mobileseg.pipeline``."""
    from absl import app, flags

    from mobileseg.cli_flags import bad_input_parser
    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)),
            flags_parser=bad_input_parser("mobileseg.pipeline"))


if __name__ == "__main__":
    main()
