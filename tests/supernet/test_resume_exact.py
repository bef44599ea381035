"""A resumed supernet run is the run it continues: same losses, same weights, bit for bit.

Each "process" is rebuilt from scratch the way ``python -m mobileseg.search`` does it
(`mobileseg.search.__main__._supernet_stage`): ``keras.utils.set_random_seed(seed)``, a new
`Supernet`, a new trainer and ``np.random.default_rng(seed)`` for the architectures.
"""

import keras
import numpy as np
import pytest

from mobileseg.data.sources import open_source
from mobileseg.supernet import trainer as trainer_module
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.trainer import SupernetTrainConfig, SupernetTrainer
from tests.supernet import spaces

SIZE = (32, 32)
SEED = 3
LOSSES = ("largest_ce", "student_ce", "distill")


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint."""


@pytest.fixture(scope="module")
def data():
    return open_source("synthetic:12,size=32x32")


def new_process(data, run_dir, **settings):
    """One run of the supernet stage as a new process would do it; returns (trainer, result)."""
    config = SupernetTrainConfig(**{"batch_size": 2, "steps_per_epoch": 2, "lr": 3e-3, "warmup_epochs": 0.5,
                                    "seed": SEED, "verbose": False, **settings})
    keras.utils.set_random_seed(SEED)
    supernet = Supernet(spaces.tiny(), data.num_classes, SIZE)
    trainer = SupernetTrainer(supernet, config)
    return trainer, trainer.fit(data, run_dir, np.random.default_rng(SEED))


def assert_same_run(whole, whole_result, resumed, resumed_result, epochs):
    assert [e["epoch"] for e in resumed_result.log] == list(range(1, epochs + 1))
    for mine, theirs in zip(resumed_result.log, whole_result.log, strict=True):
        assert {k: mine[k] for k in LOSSES} == {k: theirs[k] for k in LOSSES}, mine["epoch"]
    assert resumed.steps() == whole.steps()
    for a, b in zip(resumed.supernet.weights, whole.supernet.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(resumed.optimizer.variables, whole.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, data, monkeypatch):
    whole, whole_result = new_process(data, tmp_path / "whole", epochs=3)

    save = SupernetTrainer._save

    def save_then_die(self, folder, epoch, *args):
        save(self, folder, epoch, *args)
        if epoch == 2:
            raise Killed

    monkeypatch.setattr(SupernetTrainer, "_save", save_then_die)
    with pytest.raises(Killed):
        new_process(data, tmp_path / "split", epochs=3)
    monkeypatch.setattr(SupernetTrainer, "_save", save)

    resumed, resumed_result = new_process(data, tmp_path / "split", epochs=3)
    assert resumed_result.initial_epoch == 2
    assert_same_run(whole, whole_result, resumed, resumed_result, 3)


def test_raising_epochs_continues_the_same_run(tmp_path, data):
    """epochs=2, then epochs=3 on the same folder (a constant rate: the schedule does not depend on epochs)."""
    constant = {"min_lr": 3e-3, "warmup_epochs": 0.0}
    whole, whole_result = new_process(data, tmp_path / "whole", epochs=3, **constant)
    new_process(data, tmp_path / "split", epochs=2, **constant)
    resumed, resumed_result = new_process(data, tmp_path / "split", epochs=3, **constant)
    assert resumed_result.initial_epoch == 2
    assert_same_run(whole, whole_result, resumed, resumed_result, 3)


def test_checkpoint_names_its_contents(tmp_path, data):
    trainer, _ = new_process(data, tmp_path, epochs=1)
    from mobileseg.state_files import read_checkpoint

    meta, _ = read_checkpoint(tmp_path / "supernet" / trainer_module.CHECKPOINT, "advice",
                              trainer_module.CHECKPOINT_KEYS)
    assert meta["epoch"] == 1 and meta["rng"]["bit_generator"] == "PCG64"
