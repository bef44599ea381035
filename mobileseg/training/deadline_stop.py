"""A Keras callback that ends training at an epoch boundary when the next epoch would miss the time budget.

``python -m mobileseg.train --time_plan DIR/plan.json`` (the pipeline passes it under ``--time_budget``)
adds `DeadlineStop` for the plan's ``train`` deadline. After every epoch (saved by `RunCheckpoint`,
which runs before it), when another epoch at this process's mean pace would end past the deadline
(`mobileseg.training.loop.EpochDeadline`, the rule every training's loop applies), it sets
``stop_training``; `mobileseg.training.trainer.fit` then records status ``stopped`` with
`stop_reason` (which starts with `mobileseg.timebudget.deadline.CUT`) as the message, and
``model.keras`` holds the best validated epoch so far.
"""

from __future__ import annotations

import keras

from mobileseg.timebudget.deadline import Deadline
from mobileseg.training.loop import EpochDeadline


class DeadlineStop(keras.callbacks.Callback):
    """Stops training after the epoch past which another would not fit before ``deadline``.

    Args:
        deadline: the training's deadline.
        epochs: the run's epochs in total.
    """

    def __init__(self, deadline: Deadline, epochs: int):
        super().__init__()
        self.deadline, self.epochs = deadline, int(epochs)
        self.check: EpochDeadline | None = None
        self.stop_reason: str | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.check is None:
            self.check = EpochDeadline(self.deadline, self.epochs, epoch)

    def on_epoch_end(self, epoch, logs=None):
        cut = self.check.cut_after(epoch + 1)
        if cut:
            self.stop_reason = cut
            print(self.stop_reason, flush=True)
            self.model.stop_training = True
