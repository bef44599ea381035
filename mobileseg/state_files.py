"""The state files a run keeps in its folder, read so that a damaged one is a clear error, never a traceback.

A run resumes from what it left: JSON state (``supernet/state.json``), checkpoints of
arrays with a JSON header (``supernet/checkpoint.npz``) and an SQLite study (``study.db``).
A file truncated or overwritten by something else (a full disk before the atomic writes,
a copy cut short, a broken disk) is refused here with `StateFileError`: the file, what is
wrong with it, and what to do (each caller says what, e.g. "delete DIR/supernet to train
the supernet again"). Checkpoints are read whole, so a damaged member fails here and not
half-way through restoring the weights.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.npz"
    >>> write_checkpoint(path, {"epoch": 3}, {"w0": np.zeros(2)})
    >>> read_checkpoint(path, "train again")[0]
    {'epoch': 3}
    >>> _ = path.write_bytes(path.read_bytes()[:100])
    >>> read_checkpoint(path, "delete it to train again")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mobileseg.state_files.StateFileError: .../checkpoint.npz: damaged (File is not a zip file); delete it to train again
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import zipfile
import zlib
from pathlib import Path
from urllib.request import pathname2url

import numpy as np

from mobileseg.atomic_write import write_atomic
from mobileseg.text_files import TextFileError, read_text

META = "meta"
"""The checkpoint member holding the JSON header."""


class StateFileError(ValueError):
    """A run's state file that is damaged or unreadable; the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike, problem: str, advice: str):
        super().__init__(f"{path}: {problem}; {advice}")


def read_json(path: str | os.PathLike, advice: str, required: tuple[str, ...] = ()) -> dict | None:
    """A JSON object state file, or None when there is none.

    Args:
        path: the file.
        advice: what to do when it is damaged, for the message.
        required: keys the object must have.

    Raises:
        StateFileError: unreadable, not UTF-8, not a JSON object, or a required key missing.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(read_text(path))
    except TextFileError as error:
        raise StateFileError(path, error.problem, advice) from None
    except ValueError as error:
        raise StateFileError(path, f"damaged, not JSON ({error})", advice) from None
    if not isinstance(data, dict):
        raise StateFileError(path, f"damaged, a JSON {type(data).__name__} instead of an object", advice)
    _check_keys(path, data, required, advice)
    return data


def write_checkpoint(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays and a JSON-able header as one ``.npz`` file, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **{META: np.array(json.dumps(meta))}, **arrays)
    write_atomic(path, buffer.getvalue())


def read_checkpoint(path: str | os.PathLike, advice: str,
                    required: tuple[str, ...] = ()) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and every array of a `write_checkpoint` file, all read now.

    Args:
        path: the file.
        advice: what to do when it is damaged, for the message.
        required: keys the header must have.

    Raises:
        StateFileError: missing, unreadable, truncated, a member that fails its CRC, no header,
            or a required header key missing.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays.pop(META)))
    except OSError as error:
        raise StateFileError(path, f"cannot read it ({error.strerror or error})", advice) from None
    except KeyError:
        raise StateFileError(path, f"damaged (no {META!r} header)", advice) from None
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise StateFileError(path, f"damaged ({error})", advice) from None
    if not isinstance(meta, dict):
        raise StateFileError(path, "damaged (its header is not a JSON object)", advice)
    _check_keys(path, meta, required, advice)
    return meta, arrays


def check_sqlite(path: str | os.PathLike, advice: str) -> None:
    """Refuse an SQLite database that SQLite's own ``PRAGMA quick_check`` finds damaged (read only).

    Raises:
        StateFileError: not a database, or a damaged page, index or table.
    """
    path = Path(path)
    try:
        connection = sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)
        try:
            found = [row[0] for row in connection.execute("PRAGMA quick_check")]
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise StateFileError(path, f"damaged ({error})", advice) from None
    if found != ["ok"]:
        raise StateFileError(path, f"damaged ({' '.join(found[0].split())})", advice)


def _check_keys(path: Path, data: dict, required: tuple[str, ...], advice: str) -> None:
    missing = [key for key in required if key not in data]
    if missing:
        raise StateFileError(path, f"damaged (no {', '.join(missing)})", advice)
