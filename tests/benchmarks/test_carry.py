"""Carrying run folders across sessions (benchmarks/carry.py): save from a worktree, restore into a checkout."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from carry import MANIFEST, restore, save  # noqa: E402


def run_folder(checkout: Path) -> Path:
    run = checkout / "runs" / "train" / "net"
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events").write_bytes(b"e")
    (run / ".lock").write_text("123")
    (run / "last.keras").write_bytes(b"epoch 7")
    (run / "train_state.json").write_text('{"epoch": 7}')
    (run / "export").mkdir()
    (run / "export" / "model_int8.tflite").write_bytes(b"t" * 4096)
    return run


def test_save_from_a_worktree_then_restore_into_a_new_checkout(tmp_path):
    repo, worktree, fresh = tmp_path / "repo", tmp_path / "wt", tmp_path / "fresh"
    for checkout in (repo, worktree, fresh):
        checkout.mkdir()
        (checkout / ".git").write_text("gitdir: elsewhere")  # a worktree's .git is a file
    run = run_folder(worktree)

    target = save(run, max_mb=2048 / 2**20, root=repo)
    assert target == repo / "benchmarks" / "carry" / "runs" / "train" / "net"
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["files"] == ["last.keras", "train_state.json"]
    assert manifest["left_out_larger_than_max_mb"] == ["export/model_int8.tflite"]
    assert not (target / "tensorboard").exists() and not (target / ".lock").exists()

    lines = restore(fresh, root=repo)
    assert lines == [f"runs/train/net: restored 2 files saved {manifest['saved']}"]
    assert (fresh / "runs" / "train" / "net" / "last.keras").read_bytes() == b"epoch 7"


def test_restore_never_rolls_back_a_run_that_went_on(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    run = run_folder(repo)
    save(run, max_mb=1, root=repo)
    (run / "last.keras").write_bytes(b"epoch 9")
    later = (run / "last.keras").stat().st_mtime + 60
    os.utime(run / "last.keras", (later, later))

    [line] = restore(repo, root=repo)
    assert "left alone" in line
    assert (run / "last.keras").read_bytes() == b"epoch 9"


def test_save_refuses_a_folder_outside_any_checkout(tmp_path):
    (tmp_path / "loose").mkdir()
    try:
        save(tmp_path / "loose", max_mb=1, root=tmp_path)
    except SystemExit as error:
        assert "not inside a git checkout" in str(error)
    else:
        raise AssertionError("saved a folder outside any checkout")


def test_save_every_round_expands_the_patterns_again(tmp_path, monkeypatch, capsys):
    import carry

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    first = run_folder(repo)
    later = repo / "runs" / "train" / "later"

    def sleep(seconds):  # between the rounds a benchmark starts its next network
        assert seconds == 60 * 0.5
        later.mkdir()
        (later / "train_state.json").write_text('{"epoch": 1}')

    monkeypatch.setattr(carry.time, "sleep", sleep)
    carry.save_rounds([str(repo / "runs" / "train" / "*")], max_mb=1, leave_out=["last.*"], every_minutes=0.5,
                      rounds=2, root=repo)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1].split(":")[0] for line in lines] == [
        "benchmarks/carry/runs/train/net", "benchmarks/carry/runs/train/later", "benchmarks/carry/runs/train/net"]
    saved = repo / "benchmarks" / "carry" / "runs" / "train"
    assert json.loads((saved / "later" / MANIFEST).read_text())["files"] == ["train_state.json"]
    assert json.loads((saved / first.name / MANIFEST).read_text())["files"] == [
        "export/model_int8.tflite", "train_state.json"]  # last.keras left out
