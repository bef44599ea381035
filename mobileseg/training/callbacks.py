"""The Keras callbacks of a training run.

The run folder files they keep (``last.keras``, ``model.keras``, ``train_log.jsonl``,
``train_state.json``, ``tensorboard/``) and the order they are written in are
`mobileseg.training.run_files`'s, their names `mobileseg.run.run_dir.RunDir`'s; the TensorBoard callback is
`mobileseg.training.tensorboard_logger`.

Callbacks, in the order `fit` runs them:

1. `TrainMonitor`: times the epoch, adds the learning rate to the logs, and stops
   training at the first non-finite loss (the NaN guard); `EpochSeeds`: dropout masks
   that depend on (seed, epoch) only.
2. `Validation`: full-resolution mIoU on the validation split (``val_miou``,
   ``val_pixel_accuracy`` in the logs).
3. `mobileseg.training.tensorboard_logger.TensorBoardLogger`: epoch scalars, per-class IoU included.
4. `RunCheckpoint`: writes the run folder's files.
5. `EpochProgbar`: Keras' progress bar.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
from absl import logging

from mobileseg.run.run_dir import RunDir
from mobileseg.timebudget.eta import Pace
from mobileseg.training.run_files import RunState, optimizer_step, save_model_atomic


def weights_finite(model: keras.Model) -> bool:
    """True when every weight of `model` is finite."""
    return all(np.isfinite(w).all() for w in model.get_weights())


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)


class TrainMonitor(keras.callbacks.Callback):
    """Epoch timing, the learning rate in the logs, and the NaN guard.

    At the first batch whose (running mean) loss is NaN or infinite, training stops
    (``model.stop_training``) and `diverged` tells where.

    Args:
        batch_size: images per step, for images/s.

    Attributes:
        diverged: None, or a dict naming the first bad step: what (e.g. "loss became nan"),
            epoch, step (1-based) and optimizer_step.
        train_seconds, images_per_second: of the last epoch's training steps (validation excluded).
    """

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = int(batch_size)
        self.diverged: dict | None = None
        self.train_seconds = 0.0
        self.images_per_second = 0.0
        self._epoch = 0
        self._steps = 0
        self._started = 0.0
        self._last_batch_end = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps = epoch, 0
        self._started = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_end = time.perf_counter()
        self._steps = batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and self.diverged is None and not math.isfinite(float(loss)):
            self.diverged = {"what": f"loss became {float(loss)}", "epoch": self._epoch + 1, "step": batch + 1,
                             "optimizer_step": optimizer_step(self.model.optimizer)}
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds = self._last_batch_end - self._started
        self.images_per_second = self._steps * self.batch_size / max(self.train_seconds, 1e-9)
        if logs is not None:
            optimizer = self.model.optimizer
            logs["lr"] = float(optimizer.learning_rate)  # a schedule's value at the current step
            if self.diverged is None and "loss" in logs and not math.isfinite(float(logs["loss"])):
                self.diverged = {"what": f"loss became {float(logs['loss'])}", "epoch": epoch + 1,
                                 "step": self._steps, "optimizer_step": optimizer_step(optimizer)}
                self.model.stop_training = True


class EpochSeeds(keras.callbacks.Callback):
    """Re-seeds the model's random layers (dropout) at the start of every epoch from (seed, epoch).

    Keras keeps a random layer's state in a ``SeedGenerator`` variable that a ``.keras``
    file does not store, so a resumed run would draw other dropout masks than an
    uninterrupted one. Setting every generator to a state that depends only on (seed,
    epoch, its index) makes the masks of epoch e the same however the run was split.

    Args:
        model: the trained model.
        seed: the run's seed.
    """

    def __init__(self, model: keras.Model, seed: int):
        super().__init__()
        self.seed = int(seed)
        self.states = [v for v in model.variables if v.path.endswith("seed_generator_state")]

    def on_epoch_begin(self, epoch, logs=None):
        for index, state in enumerate(self.states):
            base = (self.seed * 1_000_003 + 7919 * (index + 1)) % 2**31
            state.assign(np.array([base, epoch << 20], dtype=state.dtype))


class Validation(keras.callbacks.Callback):
    """Full-resolution validation at the end of every ``every``-th epoch and of the last.

    Adds ``val_miou`` and ``val_pixel_accuracy`` to the epoch logs and keeps the whole
    result (with per-class IoU) in `result` (None after an epoch not validated). Skipped
    once `monitor` reports divergence.

    Args:
        evaluator: a `mobileseg.training.evaluation.Evaluator`.
        model: the model to evaluate (the main-output model sharing the trained layers).
        monitor: the run's `TrainMonitor`.
        every: validate after epochs every, 2 * every, ... (1-based).
        last: the run's last epoch (1-based), always validated; None: none is special.
        weights: returns a context manager that puts the weights to validate into the model for the
            evaluation (`mobileseg.training.weight_average.averaged_weights`); None: the trained ones.
    """

    def __init__(self, evaluator, model: keras.Model, monitor: TrainMonitor, every: int = 1,
                 last: int | None = None, weights=None):
        super().__init__()
        self.evaluator = evaluator
        self.eval_model = model
        self.monitor = monitor
        self.every = int(every)
        self.last = last
        self.weights = weights or contextlib.nullcontext
        self.result: dict | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.result = None
        if self.monitor.diverged is not None or ((epoch + 1) % self.every and epoch + 1 != self.last):
            return
        with self.weights():
            self.result = self.evaluator(self.eval_model)
        if logs is not None:
            logs["val_miou"] = self.result["miou"]
            logs["val_pixel_accuracy"] = self.result["pixel_accuracy"]


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, numbering epochs out of the run's total, with the run's ETA after every epoch.

    `fit` calls ``Model.fit`` once per epoch; this bar still prints "Epoch 3/10", and after each epoch
    ``Epoch 3/10: ETA 12m30s (at 19:42)`` for the epochs left at this process's mean pace.

    Args:
        epochs: the run's number of epochs.
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.total_epochs = int(epochs)
        self.pace: Pace | None = None

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs

    def on_epoch_begin(self, epoch, logs=None):
        if self.pace is None:
            self.pace = Pace(self.total_epochs, epoch)
        super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.verbose and epoch + 1 < self.total_epochs and not self.model.stop_training:  # not after a cut
            print(f"Epoch {epoch + 1}/{self.total_epochs}: {self.pace.text(epoch + 1)}", flush=True)


class RunCheckpoint(keras.callbacks.Callback):
    """Writes the run folder at the end of every epoch (see the module docstring).

    A diverged epoch (see `TrainMonitor`), or one that ends with non-finite weights, writes
    nothing but the state, with status "diverged" and a message naming the epoch and step;
    the checkpoints of the last good epoch stay as they are.

    Args:
        run_dir: DIR.
        student: the trained model (all outputs), saved with its optimizer to ``last.keras``.
        best_model: returns the model to save as ``model.keras`` (main output only).
        state: the run's `RunState`, updated in place.
        monitor: the run's `TrainMonitor`.
        validation: the run's `Validation`.
        hint: appended to the divergence message (e.g. what to change).

    Attributes:
        entries: the log entries written by this run, in order.
    """

    def __init__(self, run_dir: str | os.PathLike, student: keras.Model, best_model, state: RunState,
                 monitor: TrainMonitor, validation: Validation, hint: str = ""):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.student = student
        self.best_model = best_model
        self.state = state
        self.monitor = monitor
        self.validation = validation
        self.hint = hint
        self.entries: list[dict] = []
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def _diverged(self, where: dict) -> None:
        state = self.state
        if state.epoch and state.best_miou is not None:
            good = (f"{self.run_dir / RunDir.LAST} (epoch {state.epoch}) and {self.run_dir / RunDir.MODEL} "
                    f"(best, epoch {state.best_epoch}, val mIoU {state.best_miou:.4f}) are the last good checkpoints")
        elif state.epoch:
            good = f"{self.run_dir / RunDir.LAST} (epoch {state.epoch}) is the last good checkpoint"
        else:
            good = "no epoch completed, so there is no checkpoint"
        state.status = "diverged"
        state.message = (f"training diverged: {where['what']} at epoch {where['epoch']}, "
                         f"step {where['step']} (optimizer step {where['optimizer_step']}); stopped. "
                         f"{good}. {self.hint}").strip()
        state.save(self.run_dir)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.monitor.diverged is None and not weights_finite(self.student):
            self.monitor.diverged = {"what": "weights became non-finite", "epoch": epoch + 1,
                                     "step": self.state.steps_per_epoch,
                                     "optimizer_step": optimizer_step(self.model.optimizer)}
        if self.monitor.diverged is not None:
            self._diverged(self.monitor.diverged)
            return
        # last.keras first: killed at any point after it, the run resumes from this epoch; before it,
        # from the previous one (or from scratch), and nothing else of this epoch was written.
        save_model_atomic(self.student, self.run_dir / RunDir.LAST)
        result = self.validation.result or {}
        miou = result.get("miou")
        best = miou is not None and (self.state.best_miou is None or miou > self.state.best_miou)
        if best:
            save_model_atomic(self.best_model(), self.run_dir / RunDir.MODEL)
        entry = {
            "epoch": epoch + 1,
            "optimizer_step": optimizer_step(self.model.optimizer),
            **{k: _json_number(v) for k, v in logs.items() if not k.startswith("val_")},
            "val_miou": miou,
            "val_pixel_accuracy": result.get("pixel_accuracy"),
            "val_per_class_iou": result.get("per_class_iou"),
            "best": best,
            "train_seconds": round(self.monitor.train_seconds, 3),
            "images_per_second": round(self.monitor.images_per_second, 2),
            "val_seconds": round(result.get("seconds", 0.0), 3),
            "epoch_seconds": round(time.perf_counter() - self._epoch_started, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(self.run_dir / RunDir.TRAIN_LOG, "a") as log:  # appending one line; a resumed run drops a torn one
            log.write(json.dumps(entry) + "\n")
        self.state.epoch = epoch + 1
        self.state.optimizer_step = entry["optimizer_step"]
        if best:
            self.state.best_miou, self.state.best_epoch = float(miou), epoch + 1
        self.state.save(self.run_dir)
        self.entries.append(entry)
        validated = "not validated" if miou is None else f"val mIoU {miou:.4f}{' (best)' if best else ''}"
        logging.info("epoch %d: %s; %.1f images/s", epoch + 1, validated, self.monitor.images_per_second)
