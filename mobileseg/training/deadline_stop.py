"""A Keras callback that ends training at an epoch boundary when the next epoch would miss the time budget.

``python -m mobileseg.train --time_plan DIR/plan.json`` (the pipeline passes it under ``--time_budget``)
adds `DeadlineStop` for the plan's ``train`` deadline. After every epoch (saved by `RunCheckpoint`,
which runs before it), when another epoch at this process's mean pace would end past the deadline,
it sets ``stop_training``; `mobileseg.training.trainer.fit` then records status ``stopped`` with
`stop_reason` (which starts with `mobileseg.timebudget.deadline.CUT`) as the message, and
``model.keras`` holds the best validated epoch so far.
"""

from __future__ import annotations

import keras

from mobileseg.timebudget.deadline import Deadline
from mobileseg.timebudget.eta import Pace


class DeadlineStop(keras.callbacks.Callback):
    """Stops training after the epoch past which another would not fit before ``deadline``.

    Args:
        deadline: the training's deadline.
        epochs: the run's epochs in total.
    """

    def __init__(self, deadline: Deadline, epochs: int):
        super().__init__()
        self.deadline, self.epochs = deadline, int(epochs)
        self.pace: Pace | None = None
        self.stop_reason: str | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.pace is None:
            self.pace = Pace(self.epochs, epoch)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done < self.epochs and not self.deadline.fits(self.pace.unit_seconds(done)):
            self.stop_reason = self.deadline.cut_message(f"{done} of {self.epochs} epochs", "epoch")
            print(self.stop_reason, flush=True)
            self.model.stop_training = True
