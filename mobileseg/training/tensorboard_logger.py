"""TensorBoard logs of a training run: the epoch-scalars callback, written with TensorFlow alone.

Training logs go under ``DIR/tensorboard/train/``, validation under ``validation/``
(`mobileseg.run.run_dir.RunDir.TENSORBOARD`); the other callbacks are `mobileseg.training.callbacks`.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from mobileseg.training.callbacks import Validation


_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()


def write_scalar(tag: str, value: float, step: int) -> None:
    """Write one TensorBoard scalar to the default summary writer.

    ``tf.summary.scalar`` needs the ``tensorboard`` package installed; this writes the same
    event (a float32 tensor tagged for TensorBoard's "scalars" plugin) with TensorFlow alone.
    """
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


class TensorBoardLogger(keras.callbacks.Callback):
    """Epoch scalars for TensorBoard: training logs under ``train/``, validation under ``validation/``.

    Writes every numeric epoch log (``loss``, its parts, ``lr``; ``val_miou`` and
    ``val_pixel_accuracy`` as ``miou`` and ``pixel_accuracy``) and the per-class IoU
    (``iou/<class>``), at step = epoch number (1-based). The writers stay open across the
    per-epoch ``fit`` calls of a run; `close` them at the end.

    Args:
        log_dir: the TensorBoard folder.
        validation: the run's `Validation` (for per-class IoU), or None.
    """

    def __init__(self, log_dir: str | os.PathLike, validation: Validation | None = None):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.validation = validation
        self._writers: dict[str, object] = {}

    def _writer(self, name: str):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        scalars = {"train": {}, "validation": {}}
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float, np.number)) or (hasattr(value, "shape") and not value.shape):
                if key.startswith("val_"):
                    scalars["validation"][key[4:]] = float(value)
                else:
                    scalars["train"][key] = float(value)
        result = self.validation.result if self.validation is not None else None
        for name, iou in ((result or {}).get("per_class_iou") or {}).items():
            if iou is not None:
                scalars["validation"][f"iou/{name}"] = iou
        for writer_name, values in scalars.items():
            if values:
                with self._writer(writer_name).as_default():
                    for tag, value in values.items():
                        write_scalar(tag, value, epoch + 1)
                self._writer(writer_name).flush()

    def close(self) -> None:
        """Close the writers (a later epoch opens new ones)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
