"""The TensorBoard callback writes scalars TensorBoard reads, with TensorFlow alone."""

import pytest
import tensorflow as tf

from mobileseg.training.tensorboard_logger import TensorBoardLogger


def test_tensorboard_logger_writes_scalars_tensorboard_reads(tmp_path):
    class FakeValidation:
        result = {"per_class_iou": {"road": 0.5, "sky": None}}

    logger = TensorBoardLogger(tmp_path, FakeValidation())
    logger.on_epoch_end(0, {"loss": 2.0, "lr": 0.01, "val_miou": 0.25})
    logger.on_epoch_end(1, {"loss": 1.0, "lr": 0.005, "val_miou": 0.5})
    logger.close()
    found = {}
    for folder in ("train", "validation"):
        for path in (tmp_path / folder).iterdir():
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    assert value.metadata.plugin_data.plugin_name == "scalars"
                    found[(folder, value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert found == pytest.approx({("train", "loss", 1): 2.0, ("train", "lr", 1): 0.01, ("validation", "miou", 1): 0.25,
                     ("validation", "iou/road", 1): 0.5, ("train", "loss", 2): 1.0, ("train", "lr", 2): 0.005,
                     ("validation", "miou", 2): 0.5, ("validation", "iou/road", 2): 0.5})
