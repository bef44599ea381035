"""One atomic writer: a full disk leaves the old file and no debris; new files get the umask's mode."""

import errno
import os
import stat

import pytest

from mobileseg import atomic_write
from mobileseg.atomic_write import AtomicWriteError, atomic_path, write_atomic


def full_disk_after(limit: int):
    """A `_write_all` that writes ``limit`` bytes, then fails as a full disk does."""
    def write(out, payload):
        out.write(payload[:limit])
        out.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


def test_a_full_disk_keeps_the_old_file_removes_the_partial_one_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "model_int8.tflite"
    write_atomic(path, b"good" * 100)
    monkeypatch.setattr(atomic_write, "_write_all", full_disk_after(10))
    with pytest.raises(AtomicWriteError) as error:
        write_atomic(path, b"new!" * 1000)
    assert error.value.errno == errno.ENOSPC
    assert str(error.value) == f"cannot write {path}: No space left on device"
    assert path.read_bytes() == b"good" * 100
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_full_disk_at_the_flush_is_caught_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    write_atomic(path, "{}")

    def no_space(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(AtomicWriteError, match="report.json: No space left on device"):
        write_atomic(path, '{"new": true}')
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = write_atomic(tmp_path / "a.json", "{}")
        with atomic_path(tmp_path / "b.keras") as temporary:
            temporary.write_bytes(b"model")
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "b.keras").stat().st_mode) == mode


def test_atomic_path_keeps_the_suffix_and_replaces_only_on_success(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            assert temporary.parent == tmp_path and temporary.suffix == ".keras"
            temporary.write_bytes(b"half")
            raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]
