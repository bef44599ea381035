"""A resumed supernet run is the run it continues: same losses, same weights, bit for bit.

Each "process" is rebuilt from scratch the way ``python -m mobileseg.search`` does it
(`mobileseg.search.stages.supernet_stage`): ``keras.utils.set_random_seed(seed)``, a new
`Supernet`, a new trainer and ``np.random.default_rng(seed)`` for the architectures.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest

from mobileseg.data.sources import open_source
from mobileseg.state_files import read_checkpoint, write_checkpoint
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.supernet.trainer import CHECKPOINT, CHECKPOINT_KEYS, SupernetTrainer
from mobileseg.training.errors import ResumeError
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


def killed_after_epoch_2(data, run_dir, monkeypatch):
    """An epochs=3 run killed right after the checkpoint of epoch 2."""
    save = SupernetTrainer._save

    def save_then_die(self, folder, epoch, *args):
        save(self, folder, epoch, *args)
        if epoch == 2:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(SupernetTrainer, "_save", save_then_die)
        with pytest.raises(Killed):
            new_process(data, run_dir, epochs=3)


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
    killed_after_epoch_2(data, tmp_path / "split", monkeypatch)
    assert read_checkpoint(tmp_path / "split" / "supernet" / CHECKPOINT, "")[0]["seed_states"] == 1  # head dropout

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


RESUME_IN_A_NEW_PROCESS = """
import sys
sys.path.insert(0, {root!r})
import tests.conftest  # the test settings (CPU only, quiet TensorFlow)
from tests.supernet.test_resume_exact import new_process
from mobileseg.data.sources import open_source
new_process(open_source("synthetic:12,size=32x32"), {run_dir!r}, epochs=3)
"""


def test_resume_in_a_real_new_process(tmp_path, data, monkeypatch):
    """The same as the in-process resume, but the resumed part runs in a new Python process."""
    whole, whole_result = new_process(data, tmp_path / "whole", epochs=3)
    split = tmp_path / "split"
    killed_after_epoch_2(data, split, monkeypatch)
    root = str(spaces.ROOT)
    script = RESUME_IN_A_NEW_PROCESS.format(root=root, run_dir=str(split))
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta, arrays = read_checkpoint(split / "supernet" / CHECKPOINT, "", CHECKPOINT_KEYS)
    assert meta["epoch"] == 3
    assert [{k: e[k] for k in LOSSES} for e in meta["log"]] == [{k: e[k] for k in LOSSES} for e in whole_result.log]
    for i, variable in enumerate(whole.supernet.weights):
        np.testing.assert_array_equal(arrays[f"w{i}"], variable.numpy(), err_msg=variable.path)
    for i, variable in enumerate(whole.optimizer.variables):
        np.testing.assert_array_equal(arrays[f"o{i}"], variable.numpy(), err_msg=variable.path)
    for i, variable in enumerate(whole.seed_states):
        np.testing.assert_array_equal(arrays[f"s{i}"], variable.numpy())


def rewrite_checkpoint(path, edit):
    meta, arrays = read_checkpoint(path, "", CHECKPOINT_KEYS)
    edit(meta, arrays)
    write_checkpoint(path, meta, arrays)


def test_an_older_checkpoint_without_generator_states_still_resumes(tmp_path, data, caplog):
    new_process(data, tmp_path, epochs=1)

    def drop_seed_states(meta, arrays):
        del meta["seed_states"], arrays["s0"]

    rewrite_checkpoint(tmp_path / "supernet" / CHECKPOINT, drop_seed_states)
    with caplog.at_level("WARNING"):
        _, result = new_process(data, tmp_path, epochs=2)
    assert (result.initial_epoch, result.epoch) == (1, 2)
    assert "without the dropout generators' state" in caplog.text


@pytest.mark.parametrize("edit", ["count", "array", "shape"])
def test_generator_states_of_another_supernet_are_refused(tmp_path, data, edit):
    new_process(data, tmp_path, epochs=1)

    def spoil(meta, arrays):
        if edit == "count":
            meta["seed_states"] = 2
        elif edit == "array":
            del arrays["s0"]
        else:
            arrays["s0"] = np.zeros(3, "int64")

    rewrite_checkpoint(tmp_path / "supernet" / CHECKPOINT, spoil)
    with pytest.raises(ResumeError, match="random-generator states do not match this supernet"):
        new_process(data, tmp_path, epochs=2)


def test_checkpoint_names_its_contents(tmp_path, data):
    trainer, _ = new_process(data, tmp_path, epochs=1)
    meta, arrays = read_checkpoint(tmp_path / "supernet" / CHECKPOINT, "advice", CHECKPOINT_KEYS)
    assert meta["epoch"] == 1 and meta["rng"]["bit_generator"] == "PCG64"
    assert meta["seed_states"] == len(trainer.seed_states) == 1
    assert {f"w{i}" for i in range(len(trainer.supernet.weights))} | {f"o{i}" for i in range(
        len(trainer.optimizer.variables))} | {"s0"} == set(arrays)
