"""Warm-up + poly / cosine decay: values at known steps, monotonicity, serialisation inside an optimizer."""

import math
import pathlib

import keras
import numpy as np
import pytest

from mobileseg.training.schedules import WarmupDecay


def values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_warmup_is_linear_from_the_start_fraction_to_the_peak():
    schedule = WarmupDecay(0.1, total_steps=100, warmup_steps=10, warmup_start=0.0)
    assert values(schedule, [0, 5, 10]) == pytest.approx([0.0, 0.05, 0.1])


def test_poly_decay_follows_the_mmseg_formula_and_ends_at_end_lr():
    schedule = WarmupDecay(0.01, total_steps=1000, warmup_steps=0, decay="poly", power=0.9, end_lr=1e-4)
    for step in (0, 250, 500, 999, 1000):
        expected = 1e-4 + (0.01 - 1e-4) * (1 - step / 1000) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert float(schedule(5000)) == pytest.approx(1e-4)


def test_cosine_decay_after_warmup():
    schedule = WarmupDecay(1.0, total_steps=110, warmup_steps=10, decay="cosine")
    for step in (10, 35, 60, 85, 110):
        t = (step - 10) / 100
        assert float(schedule(step)) == pytest.approx(0.5 * (1 + math.cos(math.pi * t)), abs=1e-6)


@pytest.mark.parametrize("decay", ["poly", "cosine"])
def test_rises_then_never_increases(decay):
    lr = values(WarmupDecay(1.0, total_steps=60, warmup_steps=12, decay=decay), range(80))
    assert np.all(np.diff(lr[:13]) > 0)
    assert np.all(np.diff(lr[12:]) <= 1e-7)
    assert lr.max() == pytest.approx(1.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="decay"):
        WarmupDecay(1.0, 10, decay="step")
    with pytest.raises(ValueError, match="end_lr"):
        WarmupDecay(1.0, 10, end_lr=2.0)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupDecay(1.0, 0)


def test_an_optimizer_with_the_schedule_saves_and_loads_in_a_keras_file(tmp_path: pathlib.Path):
    schedule = WarmupDecay(0.02, total_steps=50, warmup_steps=5, decay="cosine", end_lr=0.001)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config()["learning_rate"]["config"] == {**schedule.get_config()}
    assert int(loaded.optimizer.iterations) == 1
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(schedule(1)))
