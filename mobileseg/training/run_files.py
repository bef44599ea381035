"""A training run's folder: its state file, its log, and the atomic model save.

Files in the run folder (DIR), named by `mobileseg.run.run_dir.RunDir` (``LAST``, ``MODEL``,
``TRAIN_LOG``, ``TRAIN_STATE``, ``TENSORBOARD``):

- ``last.keras``: the training model after the last completed epoch, with its optimizer
  (moments and iteration count): what a resumed run starts from.
- ``model.keras``: the best model so far by validation mIoU, main output only, no
  optimizer: what evaluation, QAT and export read.
- ``train_log.jsonl``: one JSON object per completed epoch: losses, learning rate,
  validation mIoU, pixel accuracy and per-class IoU, timings, images/s.
- ``train_state.json``: epoch, optimizer step, best mIoU and epoch, status
  ("running", "finished", or "stopped" / "diverged" with a message), the settings a resumed run
  must share.
- ``tensorboard/``: TensorBoard logs (``train/`` and ``validation/``, per-class IoU included).

Every file but the log is replaced atomically (written beside, then renamed), so a run
killed at any moment leaves it either old or new, never half written; the log gets one
line appended per epoch, and a torn last line is dropped when it is read. At the end of
an epoch they are written in the order last.keras, model.keras, train_log.jsonl,
train_state.json: ``last.keras`` is the commit point, written first, so that a run
killed at any point resumes (killed before it, from the epoch before; after it, from this
epoch, whose log line may then be missing); a resumed run trusts its optimizer step
count and drops log lines past it (see `mobileseg.training.trainer.fit`).

The callbacks that write them are `mobileseg.training.callbacks`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import keras

from mobileseg.atomic_write import atomic_path, write_atomic
from mobileseg.run.run_dir import RunDir
from mobileseg.state_files import StateFileError, read_json
from mobileseg.text_files import read_text


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save(path)`` through `mobileseg.atomic_write.atomic_path` (a full disk leaves ``path`` as it was).

    Example:
        >>> import tempfile, pathlib
        >>> inputs = keras.Input((4,))
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
        >>> save_model_atomic(keras.Model(inputs, keras.layers.Dense(2)(inputs)), path).name
        'm.keras'
        >>> sorted(p.name for p in path.parent.iterdir())
        ['m.keras']
    """
    with atomic_path(path) as temporary:
        model.save(temporary)
    return Path(path)


def optimizer_step(optimizer) -> int:
    """The optimizer's iteration count as an int (also for a variable mirrored by tf.distribute)."""
    return int(keras.ops.convert_to_numpy(optimizer.iterations.value))


@dataclasses.dataclass
class RunState:
    """``DIR/train_state.json``: where a run is.

    Attributes:
        epoch: epochs completed and saved in ``last.keras``.
        optimizer_step: the optimizer's iteration count at that point.
        best_miou: the best validation mIoU so far (None before the first epoch).
        best_epoch: the epoch (1-based) that reached it.
        status: "running", "finished", "stopped" (by a callback) or "diverged".
        message: why a run stopped early.
        epochs: the number of epochs asked for.
        steps_per_epoch: optimizer steps per epoch.
        fixed: settings a resumed run must share (data, input size, batch size, seed, ...).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> RunState(epoch=2, optimizer_step=10, best_miou=0.5, best_epoch=1).save(folder)
        >>> RunState.load(folder).optimizer_step, RunState.load(tempfile.mkdtemp())
        (10, None)
    """

    epoch: int = 0
    optimizer_step: int = 0
    best_miou: float | None = None
    best_epoch: int | None = None
    status: str = "running"
    message: str = ""
    epochs: int = 0
    steps_per_epoch: int = 0
    fixed: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "RunState | None":
        """The state in `run_dir`, or None when there is none.

        Raises:
            mobileseg.state_files.StateFileError: the file exists but is not a state file (named).
        """
        path = RunDir(run_dir).file(RunDir.TRAIN_STATE)
        data = read_json(path, "move it away (last.keras holds the epoch to resume from) or use a new run dir")
        if data is None:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as error:
            raise StateFileError(path, f"not a training state file ({error})", "move it away or use a new run dir")

    def save(self, run_dir: str | os.PathLike) -> None:
        """Write the state atomically (with the time it was written)."""
        data = {**dataclasses.asdict(self), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(RunDir(run_dir).file(RunDir.TRAIN_STATE), json.dumps(data, indent=2) + "\n")


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """The epochs recorded in ``DIR/train_log.jsonl`` (an unreadable trailing line is dropped)."""
    path = RunDir(run_dir).file(RunDir.TRAIN_LOG)
    if not path.exists():
        return []
    entries = []
    for line in read_text(path).splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            break
    return entries


def write_log(run_dir: str | os.PathLike, entries: list[dict]) -> None:
    """Replace ``DIR/train_log.jsonl`` with `entries`, atomically."""
    write_atomic(RunDir(run_dir).file(RunDir.TRAIN_LOG), "".join(json.dumps(e) + "\n" for e in entries))
