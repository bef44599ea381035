"""Checking a data set file by file, before anything trains or evaluates on it.

For every (image, mask) pair: both files exist; both decode completely (not truncated);
the image is PNG, JPEG or BMP; the mask is a single-channel 8-bit PNG; both have the
same size; every mask value is a class or the ignore value of that data set. A split
with no pairs is a problem too. `python -m mobileseg.data check` reports all of them;
training and evaluation call `verified_pairs`, which stops at the first bad pair with a
`DataError` naming the file, or with `skip_bad=True` leaves bad pairs out and returns them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mobileseg.data.labels import IGNORE_INDEX, describe_values
from mobileseg.data.problems import DataError, Problem
from mobileseg.data.source import Pair, SegmentationSource

IMAGE_FORMATS = ("PNG", "JPEG", "BMP")
"""Image file formats the pipeline decodes (PIL format names)."""


def _open_fully(path: Path, what: str) -> tuple[Image.Image | None, str | None]:
    """Open and decode a whole file: (image, None) or (None, problem)."""
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        return None, f"unreadable {what}: not an image file PIL can identify"
    except (OSError, Image.DecompressionBombError) as e:
        return None, f"unreadable {what}: {getattr(e, 'strerror', None) or e}"
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        im.close()
        return None, f"truncated or corrupt {what} ({e})"
    return im, None


def _hxw(im) -> str:
    return f"{im.height}x{im.width}"


def check_pair(source: SegmentationSource, pair: Pair) -> list[Problem]:
    """Everything wrong with one pair (empty when it is fine).

    Args:
        source: the data set the pair belongs to (its label values are checked).
        pair: the image and mask.

    Returns:
        Problems in a fixed order, each naming the file at fault.

    Example:
        >>> import tempfile
        >>> from mobileseg.data.camvid import CamVidSource
        >>> d = Path(tempfile.mkdtemp())
        >>> for sub in ("train", "trainannot"):
        ...     (d / sub).mkdir()
        >>> Image.new("RGB", (8, 6)).save(d / "train" / "a.png")
        >>> Image.fromarray(np.full((6, 8), 12, np.uint8)).save(d / "trainannot" / "a.png")
        >>> src = CamVidSource(d)
        >>> [p.problem for p in check_pair(src, src.pairs("train")[0])]
        ['label values 12 outside classes 0..10 and void 11']
    """
    if source.in_memory:
        return _check_arrays(source, pair)
    problems = []
    if not pair.image.is_file():
        problems.append(Problem(pair.image, f"missing image (partner of mask {pair.mask})"))
    if not pair.mask.is_file():
        problems.append(Problem(pair.mask, f"missing mask (partner of image {pair.image})"))
    if problems:
        return problems
    image, problem = _open_fully(pair.image, "image")
    if problem:
        problems.append(Problem(pair.image, problem))
    mask, problem = _open_fully(pair.mask, "mask")
    if problem:
        problems.append(Problem(pair.mask, problem))
    try:
        if image is not None and image.format not in IMAGE_FORMATS:
            problems.append(Problem(pair.image, f"unsupported image format {image.format} (use PNG, JPEG or BMP)"))
        if mask is not None:
            problems.extend(_check_mask(source, pair, mask))
        if image is not None and mask is not None and image.size != mask.size:
            problems.append(
                Problem(pair.mask, f"mask is {_hxw(mask)} (HxW) but its image {pair.image} is {_hxw(image)}")
            )
    finally:
        for im in (image, mask):
            if im is not None:
                im.close()
    return problems


def _check_mask(source: SegmentationSource, pair: Pair, mask: Image.Image) -> list[Problem]:
    if mask.format != "PNG":
        return [Problem(pair.mask, f"mask is a {mask.format} file; masks must be lossless PNG")]
    if mask.mode == "P":
        return [
            Problem(
                pair.mask,
                "mask is a palette ('P') PNG; the pipeline's PNG decoder expands palettes to colours, "
                "so save masks as 8-bit greyscale ('L') class ids",
            )
        ]
    if mask.mode != "L":
        return [
            Problem(
                pair.mask,
                f"mask has mode {mask.mode!r} ({len(mask.getbands())} channel(s)); "
                "expected one 8-bit channel of class ids ('L')",
            )
        ]
    counts = np.bincount(np.asarray(mask).ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~source.valid_raw_labels)
    if bad.size:
        return [Problem(pair.mask, f"label values {describe_values(bad)} outside {source.raw_labels}")]
    return []


def _check_arrays(source: SegmentationSource, pair: Pair) -> list[Problem]:
    image, mask = source.load_pair(pair)
    if image.ndim != 3 or image.shape[-1] != 3 or mask.shape != image.shape[:2]:
        return [Problem(pair.mask, f"mask shape {mask.shape} does not match image shape {image.shape}")]
    bad = np.setdiff1d(np.unique(mask), [*range(source.num_classes), IGNORE_INDEX])
    if bad.size:
        return [Problem(pair.mask, f"label values {describe_values(bad)} outside {source.raw_labels}")]
    return []


def _checked(
    source: SegmentationSource, split: str, pairs: Sequence[Pair], progress: bool | None
) -> Iterator[tuple[Pair, list[Problem]]]:
    """(pair, problems) in order, decoded on a few threads (PIL releases the GIL)."""
    workers = min(8, os.cpu_count() or 1)
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        results = executor.map(lambda p: check_pair(source, p), pairs)
        bar = tqdm(
            zip(pairs, results),
            total=len(pairs),
            desc=f"checking {source.name} {split}",
            unit="pair",
            disable=None if progress is None else not progress,
            leave=False,
        )
        yield from bar
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _split_pairs(source: SegmentationSource, split: str) -> tuple[list[Pair], Problem | None]:
    """The split's pairs, or the problem that prevents listing them or makes them none."""
    if split not in source.splits():
        have = ", ".join(source.splits()) or "none"
        return [], Problem(Path(source.spec), f"no split {split!r} (this data set has: {have})", split)
    try:
        pairs = source.pairs(split)
    except DataError as e:
        problem = e.problem or Problem(source.split_path(split), str(e))
        return [], dataclasses.replace(problem, split=split)
    if not pairs:
        return [], Problem(source.split_path(split), f"empty split {split!r}: no image/mask pairs", split)
    return pairs, None


def verified_pairs(
    source: SegmentationSource, split: str, skip_bad: bool = False, progress: bool | None = False
) -> tuple[list[Pair], list[Problem]]:
    """The pairs of a split that pass every check, for training and evaluation to read.

    Args:
        source: the data set.
        split: "train", "val" or "test".
        skip_bad: False: raise at the first bad pair. True: leave bad pairs out and
            return one problem per pair left out.
        progress: show a tqdm bar (None: only on a terminal).

    Returns:
        (good pairs in listing order, skipped: one `Problem` per pair left out).

    Raises:
        DataError: the first problem (naming the file) when `skip_bad` is False; an
            empty or unlistable split, or every pair bad, in any case.

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> pairs, skipped = verified_pairs(SyntheticSource(10, size=(24, 32)), "val")
        >>> len(pairs), skipped
        (1, [])
    """
    pairs, problem = _split_pairs(source, split)
    if problem:
        raise DataError.of(problem)
    good, skipped = [], []
    with contextlib.closing(_checked(source, split, pairs, progress)) as checked:  # stop the workers on raise
        for pair, problems in checked:
            if not problems:
                good.append(pair)
            elif not skip_bad:
                raise DataError.of(dataclasses.replace(problems[0], split=split))
            else:
                skipped.append(dataclasses.replace(problems[0], split=split))
    if not good:
        raise DataError(f"{source.spec}: every pair of split {split!r} is bad; first: {skipped[0]}")
    return good, skipped


@dataclasses.dataclass
class CheckReport:
    """The result of checking a data set: pair counts per split and every problem found.

    Args:
        spec: the `KIND:PATH` checked.
        pair_counts: split -> number of pairs listed (good or bad).
        problems: every problem, in split and listing order.
        seconds: how long the scan took.

    Example:
        >>> report = CheckReport("synthetic:10", {"train": 8}, [], 0.5)
        >>> report.clean, report.summary()
        (True, 'synthetic:10: train 8 pairs; clean (0.5 s)')
    """

    spec: str
    pair_counts: dict[str, int]
    problems: list[Problem]
    seconds: float

    @property
    def clean(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def bad_files(self) -> int:
        """Number of distinct files with at least one problem."""
        return len({p.path for p in self.problems})

    def summary(self) -> str:
        """One line: pairs per split, then 'clean' or the number of problems and files."""
        counts = ", ".join(f"{s} {n} pairs" for s, n in self.pair_counts.items())
        verdict = "clean" if self.clean else f"{len(self.problems)} problem(s) in {self.bad_files} file(s)"
        return f"{self.spec}: {counts or 'no splits'}; {verdict} ({self.seconds:.1f} s)"


def check_source(
    source: SegmentationSource, splits: Sequence[str] | None = None, progress: bool | None = False
) -> CheckReport:
    """Check every pair of the given splits (default: all the data set has).

    Args:
        source: the data set.
        splits: which splits; an unknown one is reported as a problem.
        progress: show a tqdm bar per split (None: only on a terminal).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> report = check_source(SyntheticSource(10, size=(24, 32)))
        >>> report.clean, report.pair_counts
        (True, {'train': 8, 'val': 1, 'test': 1})
    """
    start = time.perf_counter()
    counts: dict[str, int] = {}
    problems: list[Problem] = []
    for split in splits or source.splits():
        pairs, problem = _split_pairs(source, split)
        counts[split] = len(pairs)
        if problem:
            problems.append(problem)
        for _, found in _checked(source, split, pairs, progress):
            problems.extend(dataclasses.replace(p, split=split) for p in found)
    return CheckReport(source.spec, counts, problems, time.perf_counter() - start)
