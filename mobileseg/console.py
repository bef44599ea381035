"""A clean console: TensorFlow's and the TFLite converter's native chatter kept out of it.

TensorFlow's C++ code prints info and warning lines on the process's stderr (and, before its
logging is set up, notices about oneDNN, missing CUDA drivers and CPU instructions), and the TFLite
converter prints one line per conversion (``fully_quantize: 0, inference_type: 6, ...``):
nothing a user can act on, mixed into the progress bars. Every command calls
`quiet_native_logs` before TensorFlow is imported: TensorFlow's C++ logging goes down to
fatal errors (``TF_CPP_MIN_LOG_LEVEL=3``, unless the user set it), and what native code
writes while TensorFlow is imported and while a model is converted (`native_output_to`)
goes to the native log instead: ``MOBILESEG_NATIVE_LOG`` when set, which the commands that
have a run folder set to ``DIR/native.log`` (`keep_native_log_in`; their subprocesses
inherit it), else nowhere. Python's own output (progress bars, messages, tracebacks)
still reaches the console.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "native.log")
    >>> with native_output_to(path):
    ...     _ = os.write(2, b"a native line\\n")
    >>> open(path).read()
    'a native line\\n'
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

NATIVE_LOG_ENV = "MOBILESEG_NATIVE_LOG"
NATIVE_LOG = "native.log"


def native_log_path() -> str:
    """Where native output goes: ``$MOBILESEG_NATIVE_LOG``, else the null device."""
    return os.environ.get(NATIVE_LOG_ENV) or os.devnull


def keep_native_log_in(run_dir: str | os.PathLike) -> None:
    """Send native output to ``run_dir/native.log`` (unless ``MOBILESEG_NATIVE_LOG`` is set), here
    and in the subprocesses this process starts."""
    if not os.environ.get(NATIVE_LOG_ENV):
        os.environ[NATIVE_LOG_ENV] = str(Path(run_dir).resolve() / NATIVE_LOG)


def _python_stream_on(fd: int):
    """The Python stream (``sys.stdout`` / ``sys.stderr``) writing to descriptor ``fd``, if it does."""
    stream = sys.stdout if fd == 1 else sys.stderr
    try:
        return stream if stream.fileno() == fd else None
    except (AttributeError, OSError, ValueError):  # replaced by a buffer (tests, notebooks)
        return None


@contextlib.contextmanager
def native_output_to(path: str | os.PathLike):
    """Within the block, what native code writes on descriptors 1 and 2 is appended to ``path``;
    Python's ``sys.stdout`` and ``sys.stderr`` keep writing to the console."""
    if path != os.devnull:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    swapped = {}
    for fd in (1, 2):
        stream = _python_stream_on(fd)
        if stream is not None:  # Python keeps the console through a copy of the descriptor
            swapped[fd] = stream
            replacement = os.fdopen(os.dup(saved[fd]), "w", buffering=1, encoding=stream.encoding,
                                    errors=stream.errors)
            setattr(sys, "stdout" if fd == 1 else "stderr", replacement)
    try:
        with open(path, "ab") as log:
            for fd in (1, 2):
                os.dup2(log.fileno(), fd)
            yield
    finally:
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        for fd, stream in swapped.items():
            replacement = sys.stdout if fd == 1 else sys.stderr
            replacement.flush()
            _repoint_log_handlers(replacement, stream)
            replacement.close()
            setattr(sys, "stdout" if fd == 1 else "stderr", stream)


def _repoint_log_handlers(old, new) -> None:
    """The logging handlers created within `native_output_to` (TensorFlow's and absl's, at import) write to
    ``new`` instead of ``old``, the console copy about to be closed."""
    import logging

    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


def quietly(make, *args, **kwargs):
    """``make(*args, **kwargs)`` with its native output in the native log (e.g. LiteRT's notice that
    it created the XNNPACK delegate, printed when an interpreter is made)."""
    with native_output_to(native_log_path()):
        return make(*args, **kwargs)


def run_command(run, flag_values, argv) -> int:
    """``run(flag_values, argv)`` of a command, its native output kept in ``--run_dir``'s log when it has one."""
    if "run_dir" in flag_values and flag_values.run_dir:
        keep_native_log_in(flag_values.run_dir)
    return run(flag_values, argv)


def quiet_native_logs() -> None:
    """Before TensorFlow is imported: its C++ logging down to fatal errors (unless
    ``TF_CPP_MIN_LOG_LEVEL`` is set) and its start-up notices into the native log."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with native_output_to(native_log_path()):
        import tensorflow  # noqa: F401  (its start-up notices are printed here)
