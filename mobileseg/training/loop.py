"""One resumable epoch loop for every training of the package, and the pieces of a resumable run it owns.

Three trainings resume after their last saved epoch and then compute exactly what an uninterrupted
run would: `mobileseg.training.trainer.fit` (Keras ``fit``, one epoch at a time), the supernet's
sandwich rule (`mobileseg.supernet.trainer`) and the differentiable search
(`mobileseg.search.differentiable`). What they share is written here once:

- `EpochLoop.run`: the epochs a run has left, from the first one not saved up to ``epochs``. The
  caller trains and saves each epoch (its checkpoint is the commit point); after it, the loop ends
  the run when the caller says so (a Keras callback's ``stop_training``) or when another epoch would
  end past the time budget's deadline (`EpochDeadline`, which
  `mobileseg.training.deadline_stop.DeadlineStop` also applies as a Keras callback).
- `EpochLoop.run_steps`: the steps of one epoch for a run with its own step function (the supernet,
  the differentiable search): one progress bar over the whole run (tqdm; its ETA is the run's), each
  step's losses in it, and their means and the epoch's time for the epoch log. `fit`'s steps and
  bar are Keras' (`mobileseg.training.callbacks.EpochProgbar`).
- `check_finite`: a NaN or infinite loss raises `TrainingDiverged` before its update is applied, so
  the last checkpoint stays the last good state (in `fit`, `mobileseg.training.callbacks.TrainMonitor`
  watches the losses Keras logs).
- `CheckpointFolder`: a run's own folder of ``checkpoint.npz`` (`mobileseg.state_files`: named arrays
  and a JSON header; `variable_arrays` and `assign_arrays` name and restore groups of variables) and
  ``state.json``, both replaced atomically after every epoch, the checkpoint first.
- `fixed_conflicts`: the settings a resumed run must share with the run it continues, compared.

The files each training keeps are the ones it kept before this module existed (``fit``: ``last.keras``,
``model.keras``, ``train_log.jsonl``, ``train_state.json``; the others ``RUN/<stage>/checkpoint.npz``
and ``state.json``), so a run folder written by an earlier version resumes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from mobileseg.atomic_write import write_atomic
from mobileseg.state_files import read_checkpoint, write_checkpoint
from mobileseg.timebudget.deadline import Deadline
from mobileseg.timebudget.eta import Pace
from mobileseg.training.errors import TrainingDiverged

CHECKPOINT = "checkpoint.npz"
STATE = "state.json"
ASSUMED_FIXED = {"precision": "float32", "train_split": ["train"], "ema": 0.0}
"""The fixed settings a stored run that does not record them had (runs before ``--precision`` trained in float32,
runs before ``--train_split`` on train, runs before ``--ema`` without weight EMA)."""


def fixed_conflicts(stored: dict, ours: dict, assumed: dict = ASSUMED_FIXED) -> list[tuple[str, object, object]]:
    """``(key, stored value, our value)`` for every setting of ``ours`` that the stored run had otherwise.

    A key the stored run does not record has its ``assumed`` value (None when it has none).

    Example:
        >>> fixed_conflicts({"seed": 0, "batch_size": 4}, {"seed": 0, "batch_size": 2, "precision": "float32"})
        [('batch_size', 4, 2)]
        >>> fixed_conflicts({}, {"precision": "mixed_bfloat16", "data": "synthetic:8"})
        [('precision', 'float32', 'mixed_bfloat16'), ('data', None, 'synthetic:8')]
    """
    stored = {**assumed, **stored}
    return [(key, stored.get(key), value) for key, value in ours.items() if stored.get(key) != value]


def check_finite(losses: dict[str, float] | float, what: str) -> None:
    """Raise `TrainingDiverged` ("non-finite WHAT loss ...") when a loss is NaN or infinite.

    Example:
        >>> check_finite({"ce": 0.5, "distill": 0.1}, "supernet")
        >>> check_finite(float("nan"), "weight")
        Traceback (most recent call last):
        ...
        mobileseg.training.errors.TrainingDiverged: non-finite weight loss nan
    """
    values = losses.values() if isinstance(losses, dict) else [losses]
    if not all(math.isfinite(value) for value in values):
        raise TrainingDiverged(f"non-finite {what} loss {losses}")


class EpochDeadline:
    """Whether another epoch ends before a deadline, at this process's mean pace so far (`Pace`).

    Args:
        deadline: the stage's deadline.
        epochs: the run's epochs in all.
        first_epoch: epochs saved before this process started (the pace counts the ones after).
    """

    def __init__(self, deadline: Deadline, epochs: int, first_epoch: int):
        self.deadline, self.epochs = deadline, int(epochs)
        self.pace = Pace(self.epochs, first_epoch)

    def cut_after(self, done: int) -> str | None:
        """The deadline's cut message when epoch ``done`` (1-based, saved) is the last that fits; else None.

        Example:
            >>> import time
            >>> EpochDeadline(Deadline("train", at=None), epochs=4, first_epoch=0).cut_after(1) is None
            True
            >>> past = EpochDeadline(Deadline("train", at=time.time() - 1), epochs=4, first_epoch=0)
            >>> past.cut_after(1).split(":")[:2], past.cut_after(4)
            (['train', ' cut by the time budget after 1 of 4 epochs'], None)
        """
        if done < self.epochs and not self.deadline.fits(self.pace.unit_seconds(done)):
            return self.deadline.cut_message(f"{done} of {self.epochs} epochs", "epoch")
        return None


@dataclasses.dataclass(frozen=True)
class EpochSteps:
    """The steps of one epoch (`EpochLoop.run_steps`).

    Attributes:
        means: every loss the steps returned, averaged over the epoch.
        steps: how many steps ran.
        started: when the epoch started (`time.perf_counter`), for times that include more than its steps.
        seconds: how long its steps took.
    """

    means: dict[str, float]
    steps: int
    started: float
    seconds: float


class EpochLoop:
    """The epochs a resumable run has left, with its progress bar and its deadline (module docstring).

    Args:
        epochs: the run's epochs in all (a resumed run continues up to this).
        name: the progress bar's label: "supernet" shows "supernet epoch 3/10".
        steps_per_epoch: steps of one epoch of `run_steps` (the bar counts the run's steps); None: no bar
            (the caller shows its own progress and does not call `run_steps`).
        verbose: show the bar.
        deadline: a `mobileseg.timebudget.deadline.Deadline`, or None: after an epoch is saved, the run
            stops there when another epoch, at this process's mean pace, would end past it.

    Example:
        >>> trained = []
        >>> EpochLoop(epochs=5).run(1, lambda epoch: trained.append(epoch) or epoch < 3)  # resumed after 1
        (4, None)
        >>> trained
        [1, 2, 3]
    """

    def __init__(self, epochs: int, name: str = "", steps_per_epoch: int | None = None, verbose: bool = True,
                 deadline: Deadline | None = None):
        self.epochs, self.name, self.steps_per_epoch = int(epochs), name, steps_per_epoch
        self.verbose, self.deadline = verbose, deadline
        self._bar = None

    def run(self, first_epoch: int, run_epoch: Callable[[int], bool]) -> tuple[int, str | None]:
        """Train epochs ``first_epoch`` .. ``epochs - 1`` (0-based) through ``run_epoch``.

        ``run_epoch(e)`` trains epoch e and saves it; it returns False to end the run after it. An
        exception it raises (e.g. `TrainingDiverged`) ends the run, the last checkpoint kept.

        Returns:
            (epochs completed, the deadline's cut message or None).
        """
        deadline = EpochDeadline(self.deadline, self.epochs, first_epoch) if self.deadline is not None else None
        if self.steps_per_epoch is not None:
            self._bar = tqdm(total=self.epochs * self.steps_per_epoch, initial=first_epoch * self.steps_per_epoch,
                             unit="step", disable=not self.verbose, leave=False, dynamic_ncols=True)
        epoch, cut = first_epoch, None
        try:
            while epoch < self.epochs and cut is None:
                go_on = run_epoch(epoch)
                epoch += 1
                if not go_on:
                    break
                cut = deadline.cut_after(epoch) if deadline is not None else None
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        return epoch, cut

    def run_steps(self, epoch: int, batches: Callable[[int], Iterable], step: Callable[[object], dict[str, float]]
                  ) -> EpochSteps:
        """One epoch's steps, inside `run`: ``step(batch)`` for every batch of ``batches(epoch)``.

        Each step returns its losses (floats; `check_finite` them before updating); the bar shows the
        epoch and the last step's losses.
        """
        started = time.perf_counter()
        sums: dict[str, float] = {}
        steps = 0
        self._bar.set_description(f"{self.name} epoch {epoch + 1}/{self.epochs}")
        for batch in batches(epoch):
            losses = step(batch)
            steps += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
            self._bar.set_postfix({key: f"{value:.3f}" for key, value in losses.items()}, refresh=False)
            self._bar.update()
        seconds = time.perf_counter() - started
        return EpochSteps({key: value / max(steps, 1) for key, value in sums.items()}, steps, started, seconds)

    def say(self, line: str, progress: Callable[[str], None]) -> None:
        """Pass one line to ``progress`` (e.g. ``print``) with the bar cleared, then drawn again below it."""
        with tqdm.external_write_mode():
            progress(line)


def variable_arrays(groups: dict[str, list]) -> dict[str, np.ndarray]:
    """The values of groups of variables as checkpoint arrays, named by group prefix and position.

    Example:
        >>> sorted(variable_arrays({"w": [keras.Variable([1.0]), keras.Variable([2.0])], "o": [keras.Variable(0)]}))
        ['o0', 'w0', 'w1']
    """
    return {f"{prefix}{i}": keras.ops.convert_to_numpy(variable)
            for prefix, variables in groups.items() for i, variable in enumerate(variables)}


def assign_arrays(groups: dict[str, list], arrays: dict[str, np.ndarray]) -> None:
    """Assign the arrays `variable_arrays` named back to the variables (the caller checked that they match)."""
    for prefix, variables in groups.items():
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"{prefix}{i}"])


class CheckpointFolder:
    """A run's own folder (``RUN/supernet``, ``RUN/differentiable``): ``checkpoint.npz`` and ``state.json``.

    ``checkpoint.npz`` holds everything a resumed run needs (a JSON header and named arrays);
    ``state.json`` says where the run is, for people and the pipeline: ``epoch``, ``epochs``, the run's
    own fields, ``status`` ("running", "finished" or "cut"), ``last`` (the last epoch's log entry),
    ``fixed`` and ``updated``. Both are replaced atomically, the checkpoint first: it is the commit point.

    Args:
        folder: the folder (created by the first write).
        epochs: the run's epochs in all.
        advice: what to do about a damaged checkpoint, for the error message.
        required: the header keys a checkpoint must have.

    Example:
        >>> import tempfile
        >>> run = CheckpointFolder(Path(tempfile.mkdtemp()) / "stage", 3, "delete it to start over", ("epoch",))
        >>> run.read() is None
        True
        >>> run.save({"epoch": 1}, {"w0": np.zeros(2)}, 1, [{"epoch": 1}], {"seed": 0}, optimizer_step=4)
        >>> run.read()[0], json.loads((run.folder / STATE).read_text())["status"]
        ({'epoch': 1}, 'running')
    """

    def __init__(self, folder: str | Path, epochs: int, advice: str, required: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINT
        self.epochs, self.advice, self.required = int(epochs), advice, required

    def read(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The checkpoint's header and arrays, or None when no epoch was saved.

        Raises:
            mobileseg.state_files.StateFileError: a damaged checkpoint (named, with the advice).
        """
        if not self.path.is_file():
            return None
        return read_checkpoint(self.path, self.advice, self.required)

    def save(self, meta: dict, arrays: dict[str, np.ndarray], epoch: int, log: list[dict], fixed: dict,
             **fields) -> None:
        """Write the checkpoint of completed epoch ``epoch``, then the state "running" (with ``fields``)."""
        write_checkpoint(self.path, meta, arrays)
        self.write_state("running", epoch, log, fixed, **fields)

    def write_state(self, status: str, epoch: int, log: list[dict], fixed: dict, **fields) -> None:
        """Write ``state.json``: where the run is, with the run's own ``fields``."""
        state = {"epoch": epoch, "epochs": self.epochs, **fields, "status": status, "last": log[-1] if log else None,
                 "fixed": fixed, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(self.folder / STATE, json.dumps(state, indent=2) + "\n")
