"""The one epoch loop: epochs left, stops, the deadline, step means, non-finite losses, the checkpoint folder."""

import json
import time

import keras
import numpy as np
import pytest

from mobileseg.state_files import StateFileError
from mobileseg.timebudget.deadline import CUT, Deadline
from mobileseg.training.errors import TrainingDiverged
from mobileseg.training.loop import (
    STATE,
    CheckpointFolder,
    EpochLoop,
    assign_arrays,
    check_finite,
    fixed_conflicts,
    variable_arrays,
)


def test_a_resumed_run_trains_only_the_epochs_left_and_stops_when_an_epoch_says_so():
    ran = []
    assert EpochLoop(epochs=4).run(2, lambda epoch: ran.append(epoch) or True) == (4, None)
    assert ran == [2, 3]
    assert EpochLoop(epochs=4).run(4, ran.append) == (4, None) and ran == [2, 3]  # nothing left
    assert EpochLoop(epochs=4).run(0, lambda epoch: ran.append(epoch) or epoch < 1) == (2, None)
    assert ran == [2, 3, 0, 1]


def test_the_deadline_cuts_the_run_after_the_epoch_that_no_longer_leaves_room_for_another():
    ran = []

    def slow_epoch(epoch):
        ran.append(epoch)
        time.sleep(0.05)
        return True

    deadline = Deadline("supernet", time.time() + 0.08)  # room for one epoch of 50 ms, not two
    epochs, cut = EpochLoop(epochs=5, deadline=deadline).run(0, slow_epoch)
    assert (epochs, ran) == (1, [0])
    assert cut.startswith(f"supernet: {CUT} after 1 of 5 epochs: another epoch would end past ")
    assert EpochLoop(epochs=2, deadline=Deadline("supernet", None)).run(0, slow_epoch) == (2, None)


def test_the_steps_of_an_epoch_give_the_mean_losses_and_a_diverged_step_ends_the_run_with_the_bar_closed():
    loop = EpochLoop(epochs=3, name="demo", steps_per_epoch=4, verbose=False)
    done = []

    def run_epoch(epoch):
        done.append(loop.run_steps(epoch, lambda e: range(e * 10, e * 10 + 4), lambda b: {"a": b, "b": 2.0 * b}))
        return True

    assert loop.run(1, run_epoch) == (3, None)
    assert [(d.means, d.steps) for d in done] == [({"a": 11.5, "b": 23.0}, 4), ({"a": 21.5, "b": 43.0}, 4)]
    assert all(d.seconds >= 0 and d.started <= time.perf_counter() for d in done)

    def diverging_step(batch):
        losses = {"ce": float("nan") if batch == 2 else 1.0}
        check_finite(losses, "demo")
        return losses

    with pytest.raises(TrainingDiverged, match="non-finite demo loss {'ce': nan}"):
        loop.run(0, lambda epoch: bool(loop.run_steps(epoch, lambda e: range(4), diverging_step)))
    assert loop._bar is None  # closed, so the next run draws a new one


def test_check_finite_refuses_infinite_losses_too():
    check_finite(0.0, "weight")
    with pytest.raises(TrainingDiverged, match="non-finite architecture loss"):
        check_finite({"ce": 1.0, "expected_ms": float("inf")}, "architecture")


def test_fixed_conflicts_name_every_changed_setting_with_what_an_older_run_assumed():
    stored = {"seed": 0, "batch_size": 4, "data": "synthetic:8"}
    ours = {"seed": 1, "batch_size": 4, "data": "synthetic:8", "precision": "float32"}
    assert fixed_conflicts(stored, ours) == [("seed", 0, 1)]
    assert fixed_conflicts(stored, ours, assumed={}) == [("seed", 0, 1), ("precision", None, "float32")]


def test_the_checkpoint_folder_saves_and_restores_variables_and_says_where_the_run_is(tmp_path):
    weights, moments = [keras.Variable(np.arange(3.0)), keras.Variable(np.ones((2, 2)))], [keras.Variable(7)]
    run = CheckpointFolder(tmp_path / "stage", epochs=4, advice="delete it to start over", required=("epoch",))
    assert run.read() is None
    log = [{"epoch": 1, "ce": 2.0}, {"epoch": 2, "ce": 1.5}]
    run.save({"epoch": 2}, variable_arrays({"w": weights, "o": moments}), 2, log, {"seed": 3}, optimizer_step=8)
    state = json.loads((tmp_path / "stage" / STATE).read_text())
    assert list(state) == ["epoch", "epochs", "optimizer_step", "status", "last", "fixed", "updated"]
    assert (state["epoch"], state["epochs"], state["status"], state["last"]) == (2, 4, "running", log[-1])

    for variable in weights + moments:
        variable.assign(variable.numpy() * 0 - 1)
    meta, arrays = run.read()
    assign_arrays({"w": weights, "o": moments}, arrays)
    assert meta == {"epoch": 2} and sorted(arrays) == ["o0", "w0", "w1"]
    np.testing.assert_array_equal(weights[0].numpy(), np.arange(3.0))
    np.testing.assert_array_equal(weights[1].numpy(), np.ones((2, 2)))
    assert int(moments[0].numpy()) == 7

    run.write_state("cut", 2, log, {"seed": 3}, optimizer_step=8)
    assert json.loads((tmp_path / "stage" / STATE).read_text())["status"] == "cut"
    run.path.write_bytes(run.path.read_bytes()[:50])  # a copy cut short
    with pytest.raises(StateFileError, match=r"checkpoint.npz: damaged .*; delete it to start over"):
        run.read()
