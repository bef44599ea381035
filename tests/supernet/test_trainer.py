import json

import numpy as np
import pytest

from mobileseg.data.pipeline import Augmentation, train_dataset
from mobileseg.data.sources import open_source
from mobileseg.state_files import write_checkpoint
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.supernet.trainer import CHECKPOINT, STATE, SupernetTrainer, load_supernet_weights
from mobileseg.training.errors import ResumeError
from tests.supernet import spaces

SIZE = (32, 32)


@pytest.fixture(scope="module")
def data():
    return open_source("synthetic:16,size=32x32")


def make_trainer(data, **settings):
    config = SupernetTrainConfig(**{"epochs": 1, "batch_size": 4, "lr": 3e-3, "warmup_epochs": 0.0,
                                    "verbose": False, **settings})
    return SupernetTrainer(Supernet(spaces.tiny(), data.num_classes, SIZE), config)


def test_sandwich_training_reduces_the_loss_with_one_trace(data):
    trainer = make_trainer(data)
    trainer.set_steps_per_epoch(100)
    images, labels = next(iter(train_dataset(data, augmentation=Augmentation(SIZE, scale_range=(1.0, 1.0)),
                                             batch_size=4, drop_remainder=True)))
    rng = np.random.default_rng(0)
    archs = {tuple(a) for a in trainer.architectures(np.random.default_rng(0))}
    assert len(archs) >= 3  # largest, smallest and random networks differ
    losses = [trainer.sandwich_step(images, labels, rng) for _ in range(20)]
    first, last = losses[0], losses[-1]
    assert last["largest_ce"] < 0.8 * first["largest_ce"] and last["student_ce"] < first["student_ce"]
    assert all(np.isfinite(v) for step in losses for v in step.values())
    assert trainer.subnet_tracing_count() == 1  # 80 networks, one trace
    assert trainer.steps() == 20


def test_fit_checkpoints_and_resumes(tmp_path, data):
    rng = np.random.default_rng(7)
    first = make_trainer(data, epochs=1)
    result = first.fit(data, tmp_path, rng)
    folder = tmp_path / "supernet"
    assert (folder / CHECKPOINT).is_file() and (result.initial_epoch, result.epoch) == (0, 1)
    state = json.loads((folder / STATE).read_text())
    assert state["epoch"] == 1 and state["status"] == "finished" and state["optimizer_step"] == result.steps
    assert "supernet" in (tmp_path / "config.yaml").read_text()
    saved_weights = [v.numpy().copy() for v in first.supernet.weights]
    saved_rng = rng.bit_generator.state

    for variable in first.supernet.trainable_variables:  # spoil the weights: fit must restore them
        variable.assign(variable.numpy() + 1.0)
    restored_rng = np.random.default_rng(123)
    again = first.fit(data, tmp_path, restored_rng)  # nothing left to do: restores and stops
    assert (again.initial_epoch, again.epoch, first.steps()) == (1, 1, result.steps)
    assert restored_rng.bit_generator.state == saved_rng  # the architecture sequence continues
    for variable, saved in zip(first.supernet.weights, saved_weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), saved)

    more = make_trainer(data, epochs=2)
    more_result = more.fit(data, tmp_path, np.random.default_rng(0))
    assert (more_result.initial_epoch, more_result.epoch) == (1, 2)
    assert more.steps() == 2 * result.steps and [e["epoch"] for e in more_result.log] == [1, 2]
    assert load_supernet_weights(first.supernet, tmp_path) == 2

    other = SupernetTrainer(more.supernet, SupernetTrainConfig(epochs=3, batch_size=2, verbose=False))
    with pytest.raises(ResumeError, match="batch_size=4, but this run asks for batch_size=2"):
        other.fit(data, tmp_path, np.random.default_rng(0))


def test_config_checks():
    with pytest.raises(ValueError, match="search_scale must be positive"):
        SupernetTrainConfig(search_scale=0)
    assert SupernetTrainConfig(search_scale=0.5).train_config((64, 64)).scale_range == (0.25, 1.0)


def test_mixed_bfloat16_training_keeps_float32_weights_and_refuses_another_precision_on_resume(tmp_path, data):
    """Issue 20: the sandwich rule under mixed_bfloat16; the checkpoint is float32 and fixes the precision."""
    from mobileseg.training.train_config import dtype_policy

    config = SupernetTrainConfig(epochs=1, batch_size=4, lr=3e-3, warmup_epochs=0.0, verbose=False,
                                 precision="mixed_bfloat16")
    with dtype_policy("mixed_bfloat16"):
        trainer = SupernetTrainer(Supernet(spaces.tiny(), data.num_classes, SIZE), config)
    assert trainer.supernet.compute_dtype == "bfloat16"
    result = trainer.fit(data, tmp_path, np.random.default_rng(0))
    assert result.epoch == 1 and all(np.isfinite(v) for e in result.log for k, v in e.items()
                                     if k.endswith("ce") or k == "distill")
    plain = Supernet(spaces.tiny(), data.num_classes, SIZE)
    assert load_supernet_weights(plain, tmp_path) == 1  # a float32 supernet loads what it saved
    for saved, loaded in zip(trainer.supernet.weights, plain.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    assert json.loads((tmp_path / "supernet" / STATE).read_text())["fixed"]["precision"] == "mixed_bfloat16"
    with pytest.raises(ResumeError, match="precision=mixed_bfloat16"):
        make_trainer(data, epochs=2).fit(data, tmp_path, np.random.default_rng(0))
    with pytest.raises(ValueError, match="precision"):
        SupernetTrainConfig(precision="float16")


def test_a_run_folder_in_the_format_written_before_the_shared_loop_resumes(tmp_path, data):
    """Issue 17: the header and arrays of ``checkpoint.npz`` as `SupernetTrainer` wrote them before
    `mobileseg.training.loop` (written here by hand, not by the code under test) still resume."""
    trainer = make_trainer(data, epochs=1)
    trainer.set_steps_per_epoch(3)
    rng = np.random.default_rng(11)
    rng.random(5)  # a state the resumed run must carry on from
    log = [{"epoch": 1, "largest_ce": 2.0, "student_ce": 2.1, "distill": 0.01, "steps": 3, "seconds": 1.5,
            "steps_per_second": 2.0}]
    meta = {"epoch": 1, "log": log, "fixed": trainer.fixed(data, len(data.pairs("train"))),
            "rng": rng.bit_generator.state, "weights": [v.path for v in trainer.supernet.weights], "seed_states": 1}
    arrays = {f"w{i}": v.numpy() + 0.25 for i, v in enumerate(trainer.supernet.weights)}
    arrays.update({f"o{i}": v.numpy() for i, v in enumerate(trainer.optimizer.variables)})
    arrays["s0"] = trainer.seed_states[0].numpy() + 1
    write_checkpoint(tmp_path / "supernet" / CHECKPOINT, meta, arrays)

    resumed_rng = np.random.default_rng(0)
    result = trainer.fit(data, tmp_path, resumed_rng)  # epochs=1: restores, nothing left to train
    assert (result.initial_epoch, result.epoch, result.log) == (1, 1, log)
    assert resumed_rng.bit_generator.state == meta["rng"]
    for i, variable in enumerate(trainer.supernet.weights):
        np.testing.assert_array_equal(variable.numpy(), arrays[f"w{i}"])
    np.testing.assert_array_equal(trainer.seed_states[0].numpy(), arrays["s0"])
    state = json.loads((tmp_path / "supernet" / STATE).read_text())
    assert list(state) == ["epoch", "epochs", "optimizer_step", "status", "last", "fixed", "updated"]
    assert (state["epoch"], state["status"], state["last"]) == (1, "finished", log[0])

    more = make_trainer(data, epochs=2).fit(data, tmp_path, np.random.default_rng(0))
    assert (more.initial_epoch, more.epoch) == (1, 2) and more.log[0] == log[0] and more.log[1]["epoch"] == 2
