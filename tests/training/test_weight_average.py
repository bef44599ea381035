"""Weight EMA: validation and model.keras take the average, training and last.keras the trained weights."""

import keras
import numpy as np
import pytest

from mobileseg.training import run_files, trainer
from mobileseg.training.errors import ResumeError
from mobileseg.training.weight_average import averaged_weights
from tests.training.test_trainer import StopAfterOneEpoch, build, config, source


def _averages(optimizer):
    return [average.numpy() for average in optimizer._model_variables_moving_average]


def test_the_trained_weights_come_back_bit_for_bit_even_after_an_error():
    weight = keras.Variable(np.array([0.1, 0.2, 0.3], "float32"))
    optimizer = keras.optimizers.AdamW(0.01, use_ema=True, ema_momentum=0.7)
    optimizer.build([weight])
    for step in range(3):
        optimizer.apply([np.array([1.0, -2.0, 0.5], "float32") * (step + 1)], [weight])
    trained, average = weight.numpy(), _averages(optimizer)[0]
    assert not np.array_equal(trained, average)
    with pytest.raises(RuntimeError), averaged_weights(optimizer):
        np.testing.assert_array_equal(weight.numpy(), average)
        raise RuntimeError("validation failed")
    np.testing.assert_array_equal(weight.numpy(), trained)
    np.testing.assert_array_equal(_averages(optimizer)[0], average)  # the average is left as it was

    plain = keras.optimizers.AdamW(0.01)
    plain.build([weight])
    with averaged_weights(plain):  # no EMA: the trained weights
        np.testing.assert_array_equal(weight.numpy(), trained)


@pytest.mark.slow
def test_model_keras_holds_the_average_and_a_resumed_run_continues_the_same_average(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    data = source()
    settings = config(ema=0.9, val_every=2)  # validated once, after the last epoch: model.keras is its average
    trainer.fit(build, data, whole, settings)
    trainer.fit(build, data, split, settings, callbacks=[StopAfterOneEpoch()])
    trainer.fit(build, data, split, settings)

    last_whole, last_split = (keras.saving.load_model(run / "last.keras") for run in (whole, split))
    for a, b in zip(last_whole.get_weights() + _averages(last_whole.optimizer),
                    last_split.get_weights() + _averages(last_split.optimizer)):
        np.testing.assert_array_equal(a, b)
    assert [e["val_miou"] for e in run_files.read_log(whole)] == [e["val_miou"] for e in run_files.read_log(split)]

    state = run_files.RunState.load(whole)
    assert (state.fixed["ema"], state.best_epoch) == (0.9, 2)
    best = keras.saving.load_model(whole / "model.keras")
    trained = {v.path: v.numpy() for v in last_whole.trainable_variables}
    averages = dict(zip([v.path for v in last_whole.optimizer._trainable_variables], _averages(last_whole.optimizer)))
    assert best.trainable_variables and {v.path for v in best.trainable_variables} <= set(averages)
    for variable in best.trainable_variables:
        np.testing.assert_array_equal(variable.numpy(), averages[variable.path])
        assert not np.array_equal(variable.numpy(), trained[variable.path])


def test_a_run_keeps_its_ema_setting(tmp_path):
    run = tmp_path / "run"
    trainer.fit(build, source(), run, config(epochs=1))
    with pytest.raises(ResumeError, match="ema=0.0, but this run asks for ema=0.9"):
        trainer.fit(build, source(), run, config(epochs=2, ema=0.9))
    run_files.RunState(epoch=1, optimizer_step=6, fixed={"batch_size": 2, "seed": 0}).save(run)  # from before --ema
    with pytest.raises(ResumeError, match="ema=0.0, but this run asks for ema=0.9"):
        trainer.fit(build, source(), run, config(epochs=2, ema=0.9))
