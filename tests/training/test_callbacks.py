"""The run folder's files and the callbacks that write them, one at a time."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.training import callbacks
from mobileseg.training.callbacks import (
    EpochProgbar,
    EpochSeeds,
    RunState,
    TensorBoardLogger,
    TrainMonitor,
    read_log,
    save_model_atomic,
    write_log,
)


def tiny_model(dropout=0.0):
    inputs = keras.Input((4,))
    x = keras.layers.Dropout(dropout)(inputs) if dropout else inputs
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_state_round_trip_and_a_corrupt_state_is_named(tmp_path):
    RunState(epoch=3, optimizer_step=30, best_miou=0.4, best_epoch=2, status="finished", epochs=3,
             steps_per_epoch=10, fixed={"batch_size": 4}).save(tmp_path)
    state = RunState.load(tmp_path)
    assert (state.epoch, state.optimizer_step, state.best_miou, state.fixed) == (3, 30, 0.4, {"batch_size": 4})
    assert "updated" in json.loads((tmp_path / callbacks.STATE).read_text())
    (tmp_path / callbacks.STATE).write_text("{not json")
    with pytest.raises(ValueError, match="train_state.json"):
        RunState.load(tmp_path)


def test_a_torn_last_log_line_is_dropped(tmp_path):
    write_log(tmp_path, [{"epoch": 1}, {"epoch": 2}])
    with open(tmp_path / callbacks.LOG, "a") as log:
        log.write('{"epoch": 3, "lo')  # killed while appending
    assert read_log(tmp_path) == [{"epoch": 1}, {"epoch": 2}]


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = tiny_model()
    path = save_model_atomic(model, tmp_path / "last.keras")
    before = path.read_bytes()

    def broken_save(filepath, *args, **kwargs):
        with open(filepath, "wb") as half:
            half.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model_atomic(model, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.keras"]


def test_monitor_stops_at_the_first_non_finite_loss_and_names_the_step():
    model = tiny_model()
    monitor = TrainMonitor(batch_size=4)
    monitor.set_model(model)
    monitor.on_epoch_begin(2)
    monitor.on_train_batch_end(0, {"loss": 1.5})
    assert monitor.diverged is None and not model.stop_training
    monitor.on_train_batch_end(1, {"loss": float("nan")})
    monitor.on_train_batch_end(2, {"loss": float("inf")})
    assert model.stop_training
    assert monitor.diverged == {"what": "loss became nan", "epoch": 3, "step": 2, "optimizer_step": 0}
    logs = {"loss": float("nan")}
    monitor.on_epoch_end(2, logs)
    assert logs["lr"] == pytest.approx(0.001) and monitor.images_per_second > 0


def test_epoch_seeds_give_each_epoch_its_own_dropout_masks_whatever_came_before():
    model = tiny_model(dropout=0.5)
    seeds = EpochSeeds(model, seed=7)
    assert len(seeds.states) == 1
    x = np.ones((1, 4), "float32")

    def masks_of(epoch):
        seeds.on_epoch_begin(epoch)
        return [model(x, training=True).numpy() for _ in range(3)]

    first = masks_of(4)
    masks_of(1)  # other epochs in between
    np.testing.assert_array_equal(masks_of(4), first)
    assert not np.array_equal(masks_of(5), first)


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


def test_progress_bar_counts_epochs_of_the_whole_run(capsys):
    model = tiny_model()
    model.fit(np.ones((4, 4)), np.zeros((4, 2)), epochs=3, initial_epoch=2, verbose=2,
              callbacks=[EpochProgbar(epochs=7)])
    assert "Epoch 3/7" in capsys.readouterr().out
