"""Atomic file writes: a reader, a killed run or a full disk never leaves half a file.

Every file a command writes goes through here: the data goes to a temporary file in the
destination's folder, is flushed to the disk, and only then renamed onto the destination.
When anything fails on the way (a full disk, no permission), the temporary file is removed,
the destination is as it was, and `AtomicWriteError` names it. New files get the mode the
umask allows (``0666 & ~umask``), as ``open()`` would give them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class AtomicWriteError(OSError):
    """A file could not be written (full disk, no permission); the destination is unchanged.

    Example:
        >>> import errno
        >>> print(AtomicWriteError(errno.ENOSPC, os.strerror(errno.ENOSPC), "export/model_int8.tflite"))
        cannot write export/model_int8.tflite: No space left on device
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer that needs a file name (Keras, tf2onnx).

    The temporary file has the destination's suffix. It replaces ``path`` when the block ends
    without error, after its data is flushed to the disk; otherwise it is removed.

    Raises:
        AtomicWriteError: an `OSError` while writing, flushing or renaming (the destination is unchanged).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_text("done")
        >>> target.read_text(), [p.name for p in target.parent.iterdir()]
        ('done', ['notes.txt'])
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as error:
        raise AtomicWriteError(error.errno, error.strerror or str(error), str(path)) from error
    temporary = Path(name)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        os.close(handle)
        yield temporary
        _flush_to_disk(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise AtomicWriteError(error.errno, error.strerror or str(error), str(path)) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: the destination; its folder is created when missing.
        data: text (written as UTF-8) or bytes.

    Returns:
        The path written.

    Raises:
        AtomicWriteError: the disk is full, or the folder cannot be written (``path`` is unchanged).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "result.json"
        >>> write_atomic(target, '{"ok": true}').read_text()
        '{"ok": true}'
    """
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as out:
            _write_all(out, payload)
    return Path(path)


def _write_all(out, payload: bytes) -> None:
    """Write ``payload`` to the open file ``out`` (the step a full disk fails)."""
    out.write(payload)


def _flush_to_disk(path: Path) -> None:
    """fsync ``path``: a full disk that the page cache hid fails here, before the rename."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for a moment, in every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
