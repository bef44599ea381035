"""One command at a time in a run folder: a lock held for as long as the command runs.

``search``, ``pipeline`` and ``export`` hold ``DIR/.lock`` (an ``flock`` on it) while they
work in DIR; a second command on the same folder is refused at once, with the folder and
the pid and command line of the one running there, instead of mixing trials in one study
and overwriting the other's files. The kernel releases the lock when the process ends,
however it ends (``kill -9`` included), so a lock never outlives its command; the file
itself is removed on a normal exit, and the folder too when the command created it and
left it empty (bad input changes nothing).

The pipeline's steps run in its folder while it holds the lock: it passes the locked file
to each step (`RunLock.subprocess_kwargs`), and a step that finds that file already open
(``MOBILESEG_RUN_LOCK_FD``) works under it instead of waiting for it.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with hold(folder, "mobileseg.search"):
    ...     with hold(folder, "mobileseg.search"):  # another command: its own open file
    ...         pass  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mobileseg.run_lock.RunLockError: ...: another command is running in this folder (pid ...: mobileseg.search); wait for it to finish or stop it, or use another folder
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from mobileseg.run.run_dir import RunDir

LOCK_FILE = RunDir.LOCK
ATTEMPTS = 10
"""Tries at locking: a try fails when the holder removes the file just opened as it lets go."""
ENV = "MOBILESEG_RUN_LOCK_FD"
"""The environment variable naming the locked file's descriptor a step inherits from the pipeline."""


class RunLockError(RuntimeError):
    """The run folder is in use by another command, or cannot be locked; the message names it."""


@dataclasses.dataclass(frozen=True)
class RunLock:
    """A held run-folder lock: the folder and the open, locked file's descriptor."""

    run_dir: Path
    fd: int

    def subprocess_kwargs(self) -> dict:
        """``subprocess.run`` arguments that let a child command work in the folder under this lock."""
        return {"pass_fds": (self.fd,), "env": {**os.environ, ENV: str(self.fd)}}


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike, command: str) -> Iterator[RunLock]:
    """Hold the lock of ``run_dir`` (created when missing) for the block.

    Args:
        run_dir: the run folder.
        command: what holds it (shown to a command that is refused).

    Raises:
        RunLockError: another process holds it (its pid and command named), or the folder
            cannot be made or written.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    inherited = _inherited(path)
    if inherited is not None:
        _lock(inherited, run_dir)  # ours already (the same open file); taken if the parent let it go
        yield RunLock(run_dir, inherited)
        return
    created = _missing_folders(run_dir)
    fd = _acquire(run_dir, path, command)
    try:
        yield RunLock(run_dir, fd)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still locked: a command that opened it now finds it gone and starts over
        os.close(fd)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the command wrote there
                break


def _acquire(run_dir: Path, path: Path, command: str) -> int:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunLockError(f"{run_dir}: exists and is not a folder")
    for _ in range(ATTEMPTS):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            continue  # the folder was removed by a command that created it and just ended
        except OSError as error:
            raise RunLockError(f"{run_dir}: cannot lock the run folder ({error.strerror})") from None
        try:
            _lock(fd, run_dir)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {command}\n".encode())
            return fd
        os.close(fd)  # the holder removed that file as it let go: lock the one there now
    raise RunLockError(f"{run_dir}: cannot lock the run folder (its lock file keeps being replaced)")


def _lock(fd: int, run_dir: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunLockError(f"{run_dir}: another command is running in this folder ({_holder(fd)}); wait for it "
                           "to finish or stop it, or use another folder") from None


def _holder(fd: int) -> str:
    """``pid N: COMMAND`` as the holder wrote it in the lock file."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    pid, _, command = text.partition(" ")
    return f"pid {pid}: {command}" if pid.isdigit() else "pid unknown"


def _inherited(path: Path) -> int | None:
    """The descriptor named by `ENV` when it is this folder's lock file, else None."""
    try:
        fd = int(os.environ[ENV])
        return fd if _same_file(fd, path) else None
    except (KeyError, ValueError, OSError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (found.st_dev, found.st_ino)


def _missing_folders(run_dir: Path) -> list[Path]:
    """The folders that making ``run_dir`` will create, deepest first."""
    missing = []
    folder = run_dir.absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing
