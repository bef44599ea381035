"""Flag parsing shared by the command-line tools."""

from __future__ import annotations

import sys
from collections.abc import Callable


def parse_size(text: str) -> tuple[int, int]:
    """``"360x480"`` -> ``(360, 480)`` (height x width).

    Example:
        >>> parse_size("360x480")
        (360, 480)
        >>> parse_size("360")
        Traceback (most recent call last):
        ...
        ValueError: input size '360' is not HEIGHTxWIDTH (e.g. 360x480)
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"input size {text!r} is not HEIGHTxWIDTH (e.g. 360x480)")
    return int(parts[0]), int(parts[1])


def bad_input_parser(program: str) -> Callable[[list[str]], list[str]]:
    """An ``app.run(flags_parser=...)`` that makes a malformed flag value exit 2 (bad input), not absl's 1.

    Example:
        >>> from absl import flags
        >>> parse = bad_input_parser("mobileseg.demo")
        >>> parse(["prog", "--no_such_flag_here=1"])
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    def parse(argv: list[str]) -> list[str]:
        from absl import flags

        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            print(f"{program}: error: {error}", file=sys.stderr)
            sys.exit(2)
    return parse


def absl_main(define_flags: Callable, run: Callable) -> None:
    """The body of a command's ``main()``: native logs quiet, its flags defined, ``run(FLAGS, argv)``'s
    return value as the exit code."""
    from absl import app, flags

    from mobileseg.console import quiet_native_logs

    quiet_native_logs()
    define_flags(flags.FLAGS)
    app.run(lambda argv: sys.exit(run(flags.FLAGS, argv)))
