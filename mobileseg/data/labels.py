"""Class ids inside mobileseg: the one ignore index, raw-label lookup tables, colourising.

Every data set stores its labels its own way (CamVid's void is 11, ADE20K's is 0,
Cityscapes has 34 labelIds). Each reader maps its raw mask values through a 256-entry
lookup table to the internal ids: classes are 0..num_classes-1 and everything to be
ignored (void, unlabelled, padding added by augmentation) is `IGNORE_INDEX`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

IGNORE_INDEX = 255
"""The internal label of pixels that count neither in the loss nor in mIoU."""


def label_table(mapping: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Build the lookup table that turns raw 8-bit mask values into internal ids.

    Args:
        mapping: raw value -> internal id (a class id or `IGNORE_INDEX`). Raw values
            not in it are invalid: they map to `IGNORE_INDEX` and are flagged by checks.

    Returns:
        (table, valid): `table` uint8[256] with the internal id of each raw value, and
        `valid` bool[256], True for the raw values a mask may contain.

    Example:
        >>> table, valid = label_table({0: 0, 1: 1, 11: IGNORE_INDEX})
        >>> table[[0, 1, 11, 12]].tolist(), valid[[0, 1, 11, 12]].tolist()
        ([0, 1, 255, 255], [True, True, True, False])
    """
    table = np.full(256, IGNORE_INDEX, np.uint8)
    valid = np.zeros(256, bool)
    for raw, internal in mapping.items():
        if not 0 <= raw <= 255 or not 0 <= internal <= 255:
            raise ValueError(f"label mapping {raw} -> {internal} is outside 0..255")
        table[raw] = internal
        valid[raw] = True
    return table, valid


def describe_values(values: Sequence[int]) -> str:
    """Write sorted integer values compactly with ranges, as used in problem messages.

    Args:
        values: integers (any order, duplicates allowed).

    Example:
        >>> describe_values([5, 0, 1, 2, 3, 11, 4])
        '0..5, 11'
    """
    values = sorted(set(int(v) for v in values))
    runs: list[str] = []
    start = prev = None
    for v in values + [None]:
        if start is not None and (v is None or v != prev + 1):
            runs.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return ", ".join(runs)


def colorize(mask: np.ndarray, colors: np.ndarray, ignore_color=(0, 0, 0)) -> np.ndarray:
    """Paint an internal label map (ground truth or prediction) with the class colours.

    Args:
        mask: integer array [..., H, W] of internal ids (0..C-1 or `IGNORE_INDEX`).
        colors: uint8 [C, 3] RGB colour per class (a source's `colors`).
        ignore_color: RGB for `IGNORE_INDEX` and any id >= C.

    Returns:
        uint8 array [..., H, W, 3].

    Example:
        >>> colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
        >>> colorize(np.array([[0, 1, 255]]), colors).tolist()
        [[[255, 0, 0], [0, 0, 255], [0, 0, 0]]]
    """
    colors = np.asarray(colors, np.uint8)
    palette = np.tile(np.asarray(ignore_color, np.uint8), (256, 1))
    palette[: len(colors)] = colors
    return palette[np.asarray(mask).astype(np.int64).clip(0, 255)]
