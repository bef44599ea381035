"""A teacher is refused when it predicts other classes or is missing, and resized when its size differs."""

import pytest

from mobileseg.arch import builder
from mobileseg.training.errors import TrainingError
from mobileseg.training.teacher import load_teacher, prepare_teacher
from tests.training.test_trainer import GENOTYPE, SIZE


def test_a_teacher_with_other_classes_is_refused_and_one_of_another_size_is_resized():
    with pytest.raises(TrainingError, match="predicts 5 classes but the data set has 8"):
        prepare_teacher(builder.build_model(GENOTYPE, 5, SIZE), 8, SIZE)
    teacher = prepare_teacher(builder.build_model(GENOTYPE, 8, (64, 64)), 8, SIZE)
    assert teacher.input.shape[1:3] == SIZE and not teacher.trainable


def test_a_missing_teacher_file_is_named(tmp_path):
    with pytest.raises(TrainingError, match="no teacher model there"):
        load_teacher(tmp_path / "nothing.keras")
    with pytest.raises(TrainingError, match="model.keras"):
        load_teacher(tmp_path)  # a run folder without a model
