"""The callbacks of a training run, one at a time."""

import keras
import numpy as np
import pytest

from mobileseg.training.callbacks import EpochProgbar, EpochSeeds, TrainMonitor


def tiny_model(dropout=0.0):
    inputs = keras.Input((4,))
    x = keras.layers.Dropout(dropout)(inputs) if dropout else inputs
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(optimizer="adam", loss="mse")
    return model


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


def test_progress_bar_counts_epochs_of_the_whole_run(capsys):
    model = tiny_model()
    model.fit(np.ones((4, 4)), np.zeros((4, 2)), epochs=3, initial_epoch=2, verbose=2,
              callbacks=[EpochProgbar(epochs=7)])
    assert "Epoch 3/7" in capsys.readouterr().out
