"""Reading the text files a user hands over (genotypes, spaces, listings, profiles, tables).

One reader, so that every command says the same thing about a file it cannot use: which
file, and what is wrong with it (missing, unreadable, too large, not UTF-8 text, with the
line of the first bad byte), instead of a traceback. The caller picks the error type its
command reports (e.g. `mobileseg.arch.schema_io.GenotypeError`, exit 2).

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.txt"
    >>> _ = path.write_bytes(b"a.png a_mask.png\\nb\\xe9.png b_mask.png\\n")
    >>> read_text(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mobileseg.text_files.TextFileError: .../train.txt: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

MAX_BYTES = 64 * 2 ** 20
"""Default size limit: far above any listing or settings file, far below what would exhaust memory."""


class TextFileError(ValueError):
    """A text file that cannot be used; ``path`` and ``problem`` (one sentence) say why."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def read_text(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES,
              error: type[Exception] = TextFileError) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped).

    Args:
        path: the file.
        max_bytes: refuse a larger file before reading it.
        error: the exception to raise, built from the message ``PATH: PROBLEM``
            (`TextFileError`, with ``path`` and ``problem`` attributes, by default).

    Raises:
        ``error``: the file is missing, unreadable, larger than ``max_bytes`` or not UTF-8.
    """
    with reported_as(error):
        return _read(Path(path), max_bytes)


@contextlib.contextmanager
def reported_as(error: type[Exception]) -> Iterator[None]:
    """Raise a `TextFileError` of the block as ``error(message)`` (itself when ``error`` is `TextFileError`).

    Example:
        >>> with reported_as(KeyError):
        ...     raise TextFileError("a.yaml", "empty")
        Traceback (most recent call last):
        ...
        KeyError: 'a.yaml: empty'
    """
    try:
        yield
    except TextFileError as problem:
        if error is TextFileError:
            raise
        raise error(str(problem)) from None


def _read(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise TextFileError(path, f"{size} bytes, more than the {max_bytes} a file of this kind may have")
            data = handle.read(max_bytes + 1)
    except OSError as problem:
        raise TextFileError(path, f"cannot read it: {problem.strerror or problem}") from None
    if len(data) > max_bytes:  # grew while being read, or not a regular file
        raise TextFileError(path, f"more than the {max_bytes} bytes a file of this kind may have")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        raise TextFileError(path, f"not UTF-8 text (byte 0x{data[bad.start]:02x} on line {line}); "
                                  "save it as UTF-8") from None
