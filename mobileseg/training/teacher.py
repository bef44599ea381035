"""The teacher a run distils from: loaded from a ``.keras`` file or a run folder, checked and frozen."""

from __future__ import annotations

import os
from pathlib import Path

import keras

import mobileseg.arch.builder  # noqa: F401  (registers every mobileseg layer, to load a teacher)
from mobileseg.run.run_dir import RunDir
from mobileseg.training.errors import TrainingError
from mobileseg.training.evaluation import input_size, resized_copy


def num_classes_of(model: keras.Model) -> int:
    """Classes a segmentation model predicts: channels of its first output."""
    return int(model.outputs[0].shape[-1])


def load_teacher(path: str | os.PathLike) -> keras.Model:
    """Load a trained model to distil from: a ``.keras`` file, or a run folder's ``model.keras``.

    Raises:
        TrainingError: nothing loadable there (the message names the path).
    """
    path = Path(path)
    file = path / RunDir.MODEL if path.is_dir() else path
    if not file.is_file():
        raise TrainingError(f"{path}: no teacher model there (expected a .keras file or a run folder with "
                            f"{RunDir.MODEL})")
    try:
        return keras.saving.load_model(file, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise TrainingError(f"{file}: cannot load the teacher model: {error}") from None


def prepare_teacher(teacher: keras.Model, num_classes: int, size: tuple[int, int], name: str = "teacher"
                    ) -> keras.Model:
    """A frozen teacher taking ``size`` inputs, after checking it predicts ``num_classes`` classes.

    Raises:
        TrainingError: the class counts differ (both are named).
    """
    if num_classes_of(teacher) != num_classes:
        raise TrainingError(f"{name}: the teacher predicts {num_classes_of(teacher)} classes but the data set "
                            f"has {num_classes}")
    if input_size(teacher) not in (None, tuple(size)):
        teacher = resized_copy(teacher, size)
    teacher.trainable = False
    return teacher
