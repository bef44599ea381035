"""A run's state files: every kind of damage is a StateFileError naming the file and what to do."""

import sqlite3

import numpy as np
import pytest

from mobileseg.state_files import StateFileError, check_sqlite, read_checkpoint, read_json, write_checkpoint

ADVICE = "delete run/supernet to train it again"


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, {"epoch": 2, "log": []}, {"w0": np.arange(50_000.0), "w1": np.ones((64, 64))})
    return path


def test_a_checkpoint_reads_back_whole(checkpoint):
    meta, arrays = read_checkpoint(checkpoint, ADVICE, ("epoch", "log"))
    assert meta == {"epoch": 2, "log": []} and sorted(arrays) == ["w0", "w1"]
    np.testing.assert_array_equal(arrays["w0"], np.arange(50_000.0))


@pytest.mark.parametrize("damage, problem", [
    (lambda data: data[: len(data) // 2], "damaged (File is not a zip file)"),
    (lambda data: data[:-1], "damaged (File is not a zip file)"),
    (lambda data: data[:1000] + bytes(100) + data[1100:], "damaged (Bad CRC-32 for file 'w0.npy')"),
    (lambda data: b"", "damaged ("),
])
def test_a_truncated_or_overwritten_checkpoint_is_named_with_what_to_do(checkpoint, damage, problem):
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    with pytest.raises(StateFileError) as error:
        read_checkpoint(checkpoint, ADVICE)
    assert str(error.value).startswith(f"{checkpoint}: {problem}") and str(error.value).endswith(f"; {ADVICE}")


def test_a_checkpoint_without_its_header_or_a_header_key(tmp_path, checkpoint):
    np.savez(tmp_path / "plain.npz", w0=np.zeros(3))
    with pytest.raises(StateFileError, match=r"plain\.npz: damaged \(no 'meta' header\); delete"):
        read_checkpoint(tmp_path / "plain.npz", ADVICE)
    with pytest.raises(StateFileError, match=r"checkpoint\.npz: damaged \(no rng, weights\); delete"):
        read_checkpoint(checkpoint, ADVICE, ("epoch", "rng", "weights"))


@pytest.mark.parametrize("content, problem", [
    (b'{"epoch": 3, "fix', "damaged, not JSON (Unterminated string"),
    (b'["epoch", 3]', "damaged, a JSON list instead of an object"),
    (b'{"epoch": 3}', "damaged (no fixed)"),
    (b'{"epoch": 3, "fixed": "\xff"}', "not UTF-8 text (byte 0xff on line 1)"),
])
def test_a_damaged_json_state_is_named_with_what_to_do(tmp_path, content, problem):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError) as error:
        read_json(path, ADVICE, ("epoch", "fixed"))
    assert str(error.value).startswith(f"{path}: {problem}") and str(error.value).endswith(f"; {ADVICE}")
    assert read_json(tmp_path / "none.json", ADVICE) is None


def test_a_damaged_sqlite_database_is_found_by_sqlite_s_own_check(tmp_path):
    path = tmp_path / "study.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE trials (number INTEGER PRIMARY KEY, value TEXT)")
        connection.executemany("INSERT INTO trials VALUES (?, ?)", [(i, "x" * 500) for i in range(200)])
    connection.close()
    check_sqlite(path, ADVICE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFileError, match=rf"study\.db: damaged \(.*\); {ADVICE}"):
        check_sqlite(path, ADVICE)
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateFileError, match=r"study\.db: damaged \(file is not a database\)"):
        check_sqlite(path, ADVICE)
    assert path.read_bytes() == b"not a database at all" * 100  # read only
