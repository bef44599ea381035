"""The run folder's files: the state file, the log, the atomic model save."""

import json
import os

import pytest

from mobileseg.run.run_dir import RunDir
from mobileseg.training.run_files import RunState, read_log, save_model_atomic, write_log
from tests.training.test_callbacks import tiny_model


def test_state_round_trip_and_a_corrupt_state_is_named(tmp_path):
    RunState(epoch=3, optimizer_step=30, best_miou=0.4, best_epoch=2, status="finished", epochs=3,
             steps_per_epoch=10, fixed={"batch_size": 4}).save(tmp_path)
    state = RunState.load(tmp_path)
    assert (state.epoch, state.optimizer_step, state.best_miou, state.fixed) == (3, 30, 0.4, {"batch_size": 4})
    assert "updated" in json.loads((tmp_path / RunDir.TRAIN_STATE).read_text())
    (tmp_path / RunDir.TRAIN_STATE).write_text("{not json")
    with pytest.raises(ValueError, match="train_state.json"):
        RunState.load(tmp_path)


def test_a_torn_last_log_line_is_dropped(tmp_path):
    write_log(tmp_path, [{"epoch": 1}, {"epoch": 2}])
    with open(tmp_path / RunDir.TRAIN_LOG, "a") as log:
        log.write('{"epoch": 3, "lo')  # killed while appending
    assert read_log(tmp_path) == [{"epoch": 1}, {"epoch": 2}]


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = tiny_model()
    path = save_model_atomic(model, tmp_path / "last.keras")
    before = path.read_bytes()

    def broken_save(filepath, *args, **kwargs):
        with open(filepath, "wb") as half:
            half.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model_atomic(model, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.keras"]
