"""Training cut by the time budget: it stops at an epoch boundary, says so, and the pipeline takes the run as done."""

import json
import time

from mobileseg.arch import builder
from mobileseg.pipeline_steps import train_finished
from mobileseg.timebudget.deadline import CUT, Deadline
from mobileseg.training import trainer
from mobileseg.training.deadline_stop import DeadlineStop
from tests.training.test_trainer import GENOTYPE, SIZE, config, source


def build():
    return builder.build_model(GENOTYPE, 8, SIZE)


def test_a_deadline_that_one_more_epoch_would_miss_stops_training_after_the_epoch_saved(tmp_path, capsys):
    stop = DeadlineStop(Deadline("train", time.time() + 1e-3), epochs=3)
    result = trainer.fit(build, source(), tmp_path, config(epochs=3), callbacks=[stop])
    assert result.epoch == 1
    state = json.loads((tmp_path / "train_state.json").read_text())
    assert state["status"] == "stopped" and state["epoch"] == 1
    assert state["message"].startswith(f"train: {CUT} after 1 of 3 epochs: another epoch would end past ")
    assert stop.stop_reason == state["message"] and stop.stop_reason in capsys.readouterr().out
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "last.keras").is_file()
    assert train_finished(tmp_path, 3)  # the pipeline goes on to export with what it has


def test_a_run_stopped_for_another_reason_is_not_taken_for_a_cut(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"keras")
    state = {"status": "stopped", "epoch": 1, "message": "stopped by a callback after epoch 1"}
    (tmp_path / "train_state.json").write_text(json.dumps(state))
    assert not train_finished(tmp_path, 2)
    state["message"] = f"train: {CUT} after 1 of 2 epochs"
    (tmp_path / "train_state.json").write_text(json.dumps(state))
    assert train_finished(tmp_path, 2)
