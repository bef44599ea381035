"""A killed and resumed differentiable search is the search it continues: same log, weights and logits.

Each "process" is rebuilt the way ``python -m mobileseg.search --strategy differentiable`` does it
(`mobileseg.search.stages.differentiable_stage`): the global seed, a new supernet and search, a
fresh generator for the architectures.
"""

import keras
import numpy as np
import pytest

from mobileseg.data.sources import open_source
from mobileseg.search.differentiable import CHECKPOINT, FOLDER, DifferentiableConfig, DifferentiableSearch
from mobileseg.state_files import read_checkpoint
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.trainer import SupernetTrainConfig
from tests.search.latency_tables import fake_table, latency_model
from tests.supernet.spaces import tiny

SIZE, SEED = (32, 32), 5


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint."""


def new_process(data, run_dir, epochs):
    keras.utils.set_random_seed(SEED)
    space = tiny()
    supernet = Supernet(space, data.num_classes, SIZE)
    model = latency_model(fake_table(space, SIZE, data.num_classes), SIZE, data.num_classes)
    config = DifferentiableConfig(SupernetTrainConfig(epochs=epochs, batch_size=2, steps_per_epoch=2, lr=3e-3,
                                                      min_lr=3e-3, seed=SEED, verbose=False),
                                  calib_batches=1, val_images=2, warmup_epochs=1)
    search = DifferentiableSearch(supernet, model, config)
    return search, search.fit(data, run_dir, np.random.default_rng(SEED))


def test_killed_after_epoch_1_and_resumed_equals_an_uninterrupted_search(tmp_path, monkeypatch):
    """Epoch 1 trains the weights only (the warm-up), epoch 2 the weights and the architecture."""
    data = open_source("synthetic:12,size=32x32")
    whole, whole_done = new_process(data, tmp_path / "whole", 2)
    save = DifferentiableSearch._save

    def save_then_die(self, folder, epoch, *args):
        save(self, folder, epoch, *args)
        if epoch == 1:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(DifferentiableSearch, "_save", save_then_die)
        with pytest.raises(Killed):
            new_process(data, tmp_path / "split", 2)
    assert "s0" in read_checkpoint(tmp_path / "split" / FOLDER / CHECKPOINT, "")[1]  # the head dropout's state
    resumed, resumed_done = new_process(data, tmp_path / "split", 2)
    assert resumed_done.initial_epoch == 1
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in resumed_done.log] == \
        [{k: v for k, v in e.items() if k != "seconds"} for e in whole_done.log]
    for mine, theirs in ((resumed.supernet.weights, whole.supernet.weights), (resumed.arch.variables,
                                                                               whole.arch.variables)):
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
