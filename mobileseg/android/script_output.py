"""What ``android_bench/run_benchmark.sh`` printed: its ``MOBILESEG_*`` markers, and the result or error they mean.

The script (pushed to the phone by `mobileseg.android.device_benchmark.AndroidDevice`) marks its
output with ``MOBILESEG_NAME text`` lines around what ``benchmark_model`` printed; `ScriptOutput`
splits them, `raise_script_error` turns the script's own ``MOBILESEG_ERROR`` into an exception, and
`benchmark_result` parses a run's output (`mobileseg.android.benchmark_output`) or raises the
error that explains why there is none.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from mobileseg.android.benchmark_output import BenchmarkOutput, parse_benchmark_output
from mobileseg.android.errors import (BenchmarkBinaryMissingError, BenchmarkError,
                                      BenchmarkFailedError, BenchmarkKilledError,
                                      BenchmarkOutputError, DeviceLost, TruncatedOutputError,
                                      WrongAbiError)

_MARKER = re.compile(r"^MOBILESEG_(\w+)(?: (.*))?$")
_EXEC_FAILED = re.compile(r"not executable|Exec format error|cannot execute binary file")


@dataclasses.dataclass(frozen=True)
class ScriptOutput:
    """The output of one ``run_benchmark.sh`` call, split into its markers and the rest.

    Args:
        markers: ``(NAME, text)`` for each ``MOBILESEG_NAME text`` line, in order.
        body: every other line: what ``benchmark_model`` printed.

    Example:
        >>> out = ScriptOutput.parse("MOBILESEG_BEGIN graph=m threads=1\\nINFO: hi\\n"
        ...                          "MOBILESEG_EXIT 0\\n")
        >>> out.exit_status, out.body, out.fields("BEGIN")["threads"]
        (0, 'INFO: hi', '1')
    """

    markers: tuple[tuple[str, str], ...]
    body: str

    @classmethod
    def parse(cls, text: str) -> "ScriptOutput":
        """Split the script's output."""
        markers, body = [], []
        for line in text.splitlines():
            match = _MARKER.match(line.rstrip("\r"))
            if match:
                markers.append((match.group(1), match.group(2) or ""))
            else:
                body.append(line.rstrip("\r"))
        return cls(tuple(markers), "\n".join(body))

    def first(self, name: str) -> str | None:
        """The text of the first ``MOBILESEG_<name>`` line, None when absent."""
        return next((text for marker, text in self.markers if marker == name), None)

    def fields(self, name: str) -> dict[str, str]:
        """The ``key=value`` words of the first ``MOBILESEG_<name>`` line."""
        text = self.first(name) or ""
        return dict(word.split("=", 1) for word in text.split() if "=" in word)

    @property
    def exit_status(self) -> int | None:
        """benchmark_model's exit status, None when the output stopped before it."""
        text = self.first("EXIT")
        return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None


def int_or_none(text: str | None) -> int | None:
    """``text`` as an int, None when it is absent or not an integer.

    Example:
        >>> int_or_none("-3"), int_or_none("n/a"), int_or_none(None)
        (-3, None, None)
    """
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def raise_script_error(out: ScriptOutput, serial: str, binary_remote: str, abilist: Sequence[str]) -> None:
    """Raise the error the script reported with ``MOBILESEG_ERROR`` on phone ``serial``, if any.

    Raises:
        BenchmarkBinaryMissingError, WrongAbiError, BenchmarkError: what the script found wrong.
    """
    error = out.first("ERROR")
    if error is None:
        return
    kind = error.split()[0] if error.split() else ""
    fields = out.fields("ERROR")
    if kind == "binary_missing":
        raise BenchmarkBinaryMissingError(serial, fields.get("path", binary_remote))
    if kind == "wrong_abi":
        raise WrongAbiError(serial, fields.get("binary", ""),
                            fields.get("device", "").split(",") or abilist)
    if kind == "binary_not_executable":
        raise BenchmarkError(
            f"benchmark_model at {fields.get('path')} on {serial} is not executable "
            "and chmod failed: keep it under /data/local/tmp (other folders are often "
            "mounted noexec)", serial)
    raise BenchmarkError(f"run_benchmark.sh on {serial} reported: {error}",
                         serial)


def benchmark_result(out: ScriptOutput, name: str, serial: str, binary_remote: str, abilist: Sequence[str],
                     connected: Callable[[], bool]) -> BenchmarkOutput:
    """The parsed benchmark output of model ``name`` on ``serial``, or the error that explains why there is none.

    Args:
        out: the script's output.
        name: the model's file name (for messages).
        serial, binary_remote, abilist: the phone, its ``benchmark_model`` and its ABIs.
        connected: whether the phone is still connected (asked only when the output stops early).

    Raises:
        DeviceLost, TruncatedOutputError, WrongAbiError, BenchmarkBinaryMissingError,
        BenchmarkKilledError, BenchmarkFailedError: ``benchmark_model`` gave no result.
    """
    raise_script_error(out, serial, binary_remote, abilist)
    status = out.exit_status
    tail = "\n".join(out.body.strip().splitlines()[-3:])
    if status is None:
        if not connected():
            raise DeviceLost(serial, f"benchmarking {name}")
        raise TruncatedOutputError(
            f"the output of benchmark_model on {serial} for {name} stops before the "
            f"end (the connection dropped or the shell died); last lines: {tail!r}; run "
            "again, and check the cable", tail=tail, serial=serial)
    errors = [line.split("ERROR: ", 1)[1].strip() for line in out.body.splitlines()
              if "ERROR: " in line]
    # The shell could not start the binary: mksh says "not executable: 64-bit ELF file"
    # (status 1 or 126), dash/bash "Exec format error" (126); "not found" is 127.
    if status != 0 and _EXEC_FAILED.search(out.body):
        raise WrongAbiError(serial, "", abilist)
    if status == 127 or (status != 0 and "inaccessible or not found" in out.body):
        raise BenchmarkBinaryMissingError(serial, binary_remote)
    if status > 128:
        raise BenchmarkKilledError(serial, name, status - 128)
    if status != 0:
        raise BenchmarkFailedError(serial, name, "; ".join(errors) or
                                   f"exit status {status}; last lines: {tail!r}")
    try:
        return parse_benchmark_output(out.body)
    except TruncatedOutputError as err:
        raise TruncatedOutputError(
            f"benchmark_model on {serial} for {name} exited normally but its output is "
            f"cut short: {err}", tail=err.tail, serial=serial) from err
    except BenchmarkOutputError as err:
        raise BenchmarkFailedError(serial, name, str(err)) from err
