"""Flag parsing shared by the command-line tools."""

from __future__ import annotations


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
