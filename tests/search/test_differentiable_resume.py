"""A killed and resumed differentiable search is the search it continues: same log, weights and logits.

Each "process" is rebuilt the way ``python -m mobileseg.search --strategy differentiable`` does it
(`mobileseg.search.stages.differentiable_stage`): the global seed, a new supernet and search, a
fresh generator for the architectures.
"""

import json

import keras
import numpy as np
import pytest

from mobileseg.arch import schema_io
from mobileseg.data.sources import open_source
from mobileseg.search.differentiable import DifferentiableSearch
from mobileseg.search.differentiable_config import DifferentiableConfig
from mobileseg.search.differentiable_folder import FOLDER
from mobileseg.state_files import read_checkpoint, write_checkpoint
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.training.loop import CHECKPOINT
from tests.search.latency_tables import fake_table, latency_model
from tests.supernet.spaces import tiny

SIZE, SEED = (32, 32), 5


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint."""


def new_search(data, epochs):
    keras.utils.set_random_seed(SEED)
    space = tiny()
    supernet = Supernet(space, data.num_classes, SIZE)
    model = latency_model(fake_table(space, SIZE, data.num_classes), SIZE, data.num_classes)
    config = DifferentiableConfig(SupernetTrainConfig(epochs=epochs, batch_size=2, steps_per_epoch=2, lr=3e-3,
                                                      min_lr=3e-3, seed=SEED, verbose=False),
                                  calib_batches=1, val_images=2, warmup_epochs=1)
    return DifferentiableSearch(supernet, model, config)


def new_process(data, run_dir, epochs):
    search = new_search(data, epochs)
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


def test_a_run_folder_in_the_format_written_before_the_shared_loop_resumes(tmp_path):
    """Issue 17: ``checkpoint.npz`` as `DifferentiableSearch` wrote it before `mobileseg.training.loop` (its
    header and array names written here by hand, not by the code under test) still resumes."""
    data = open_source("synthetic:12,size=32x32")
    search = new_search(data, 1)
    search.set_steps_per_epoch(2)
    rng = np.random.default_rng(21)
    rng.random(4)  # a state the resumed search must carry on from
    best = search.most_likely()
    candidate = {"epoch": 1, "genotype": schema_io.to_dict(best.genotype), "decisions": best.decisions,
                 "latency_ms": 1.5, "miou": 0.25, "fixups": best.fixups}
    log = [{"epoch": 1, "weight_ce": 2.0, "steps": 2, "architecture": False, "latency_weight": 0.3,
            "next_latency_weight": 0.3, "latency_ms": 1.5, "miou": 0.25, "seconds": 3.0}]
    meta = {"epoch": 1, "log": log, "candidates": [candidate], "fixed": search.fixed(data, len(data.pairs("train"))),
            "rng": rng.bit_generator.state, "latency_weight": 0.3, "latency_scale_ms": 2.5,
            "weights": [v.path for v in search.supernet.weights]}
    groups = {"w": search.supernet.weights, "o": search.weight_optimizer.variables, "a": search.arch.variables,
              "q": search.arch_optimizer.variables, "s": search.supernet.seed_states()}
    arrays = {f"{prefix}{i}": keras.ops.convert_to_numpy(v) + (0.5 if prefix == "a" else 0)
              for prefix, variables in groups.items() for i, v in enumerate(variables)}
    write_checkpoint(tmp_path / FOLDER / CHECKPOINT, meta, arrays)

    resumed_rng = np.random.default_rng(0)
    done = search.fit(data, tmp_path, resumed_rng)  # epochs=1: restores, nothing left to train
    assert (done.initial_epoch, done.epoch, done.log) == (1, 1, log)
    assert resumed_rng.bit_generator.state == meta["rng"]
    assert (search.latency_weight, search.latency_scale_ms) == (0.3, 2.5)
    for i, variable in enumerate(search.arch.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), arrays[f"a{i}"])
    assert [(c.genotype, c.miou) for c in done.result.candidates] == [(best.genotype, 0.25)]
    state = json.loads((tmp_path / FOLDER / "state.json").read_text())
    assert set(state) == {"epoch", "epochs", "latency_weight", "status", "last", "fixed", "updated"}
    assert (state["epoch"], state["status"], state["last"], state["latency_weight"]) == (1, "finished", log[0], 0.3)

    _, more = new_process(data, tmp_path, 2)
    assert (more.initial_epoch, more.epoch) == (1, 2) and more.log[0] == log[0] and more.log[1]["architecture"]
