"""One command at a time in a run folder: refused with the holder's pid, free again when it dies (kill -9 too)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mobileseg.run_lock import LOCK_FILE, RunLockError, hold

REPO = Path(__file__).resolve().parents[1]
HOLDER = textwrap.dedent("""
    import subprocess, sys, time
    from mobileseg.run_lock import hold

    with hold(sys.argv[1], "python -m mobileseg.search --run_dir " + sys.argv[1]) as lock:
        print("locked", flush=True)
        if len(sys.argv) > 2:  # a child step under the lock, as the pipeline runs one
            sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2]], **lock.subprocess_kwargs()).returncode)
        time.sleep(120)
""")


def start_holder(folder: Path, *child: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), *child], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_command_is_refused_with_the_folder_and_the_holder_s_pid_until_kill_9(tmp_path):
    folder = tmp_path / "run"
    holder = start_holder(folder)
    try:
        with pytest.raises(RunLockError) as error:
            with hold(folder, "mobileseg.export"):
                pass
        assert str(error.value) == (
            f"{folder}: another command is running in this folder (pid {holder.pid}: python -m mobileseg.search "
            f"--run_dir {folder}); wait for it to finish or stop it, or use another folder")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / LOCK_FILE).exists()  # left by kill -9, but no longer locked
    with hold(folder, "mobileseg.export"):
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()} mobileseg.export\n"
    assert list(folder.iterdir()) == []


def test_a_child_given_the_lock_works_under_it_and_another_child_is_refused(tmp_path):
    folder = tmp_path / "run"
    step = f"from mobileseg.run_lock import hold\nwith hold({str(folder)!r}, 'step'):\n    print('step ran')"
    holder = subprocess.run([sys.executable, "-c", HOLDER, str(folder), step], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert holder.returncode == 0 and holder.stdout.splitlines() == ["locked", "step ran"], holder.stderr
    holder = start_holder(folder)
    try:
        stranger = subprocess.run([sys.executable, "-c", step], cwd=REPO, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO), "MOBILESEG_RUN_LOCK_FD": "3"},
                                  timeout=60)
        assert stranger.returncode == 1 and f"pid {holder.pid}" in stranger.stderr
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_leaves_no_trace_and_removes_the_folders_it_made(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    with hold(existing, "x"):
        assert [p.name for p in existing.iterdir()] == [LOCK_FILE]
    assert list(existing.iterdir()) == []
    with hold(tmp_path / "new" / "run", "x"):
        pass
    assert not (tmp_path / "new").exists()
    with hold(tmp_path / "kept" / "run", "x"):
        (tmp_path / "kept" / "run" / "arch.yaml").write_text("name: x\n")
    assert (tmp_path / "kept" / "run" / "arch.yaml").is_file() and not (tmp_path / "kept" / "run" / LOCK_FILE).exists()


def test_a_file_in_place_of_the_folder_is_named(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(RunLockError, match=f"{tmp_path / 'run'}: exists and is not a folder"):
        with hold(tmp_path / "run", "x"):
            pass
