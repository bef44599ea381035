"""The interface every data set reader implements: classes, colours, splits, image/mask pairs.

A source knows where its pairs are and how its raw mask values map to the internal ids
(`mobileseg.data.labels`); it does not decode for training (that is
`mobileseg.data.pipeline`) nor judge the files (that is `mobileseg.data.checks`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mobileseg.data.labels import IGNORE_INDEX, label_table
from mobileseg.data.problems import DataError, Problem

SPLITS = ("train", "val", "test")
"""Split names, in the order they are listed wherever a layout has them."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Image file types the pipeline decodes (tf.io.decode_image); masks are always PNG."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """One image and its mask.

    Either file may be missing on disk (a reader lists the partner it expected), which
    the checks report. Generated sources use names that are not files.

    Args:
        image: path of the RGB image.
        mask: path of the single-channel PNG of raw label values.

    Example:
        >>> Pair(Path("train/a.png"), Path("trainannot/a.png")).mask.parent.name
        'trainannot'
    """

    image: Path
    mask: Path


def existing_dir(path: str | Path, kind: str, what: str = "data set directory") -> Path:
    """Return `path` resolved, or raise `DataError` naming it when it is not a directory.

    Args:
        path: the folder a user named.
        kind: the data set kind, for the message.
        what: what the folder should be, for the message.

    Example:
        >>> existing_dir("/no/such/dir", "camvid")
        Traceback (most recent call last):
        ...
        mobileseg.data.problems.DataError: /no/such/dir: camvid data set directory not found
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        problem = f"{kind} {what} not found" if not p.exists() else f"{kind} {what} is not a directory"
        raise DataError.of(Problem(p, problem))
    return p.resolve()


class SegmentationSource(abc.ABC):
    """A labelled segmentation data set: its classes and, per split, its (image, mask) pairs.

    Subclasses implement `splits()` and `_list_pairs(split)`; raw mask values are mapped
    to internal ids with the table built from `label_mapping`.

    Args:
        kind: the data set kind as named on the command line ("camvid", ...).
        root: the folder (or, for generated data, the argument) it was opened from.
        class_names: one name per class, in id order.
        colors: RGB per class, [num_classes, 3], used to colourise predictions.
        label_mapping: raw mask value -> internal id (a class or `IGNORE_INDEX`);
            other raw values are invalid.
        raw_labels: how the raw values are described in problem messages,
            e.g. "classes 0..10 and void 11".

    Attributes:
        name, num_classes, class_names, colors (uint8 [C, 3]), ignore_index (always
        `IGNORE_INDEX`), label_table (uint8[256], raw -> internal), valid_raw_labels
        (bool[256]), in_memory (True for generated sources whose pairs are not files).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> src = SyntheticSource(10, size=(24, 32))
        >>> src.splits(), len(src.pairs("train")), src.num_classes, src.ignore_index
        (('train', 'val', 'test'), 8, 8, 255)
        >>> image, mask = src.load_pair(src.pairs("val")[0])
        >>> image.shape, image.dtype, mask.shape, mask.dtype
        ((24, 32, 3), dtype('uint8'), (24, 32), dtype('uint8'))
    """

    in_memory = False

    def __init__(
        self,
        *,
        kind: str,
        root: str | Path,
        class_names: Sequence[str],
        colors,
        label_mapping: Mapping[int, int],
        raw_labels: str,
    ):
        colors = np.asarray(colors, np.uint8)
        if colors.shape != (len(class_names), 3):
            raise ValueError(f"{kind}: {len(class_names)} classes but colors has shape {colors.shape}")
        self.name = kind
        self.root = root
        self.class_names = tuple(class_names)
        self.colors = colors
        self.ignore_index = IGNORE_INDEX
        self.label_table, self.valid_raw_labels = label_table(label_mapping)
        self.raw_labels = raw_labels
        self._pairs: dict[str, list[Pair]] = {}

    @property
    def num_classes(self) -> int:
        """Number of classes (ids 0..num_classes-1)."""
        return len(self.class_names)

    @property
    def spec(self) -> str:
        """The `KIND:PATH` string this source is opened from."""
        return f"{self.name}:{self.root}"

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The splits this data set has on disk, in `SPLITS` order."""

    @abc.abstractmethod
    def _list_pairs(self, split: str) -> list[Pair]:
        """All pairs of `split`, sorted, including ones whose partner file is missing."""

    def split_path(self, split: str) -> Path:
        """The file or folder that defines `split` (named when the split is empty or unreadable)."""
        return Path(str(self.root))

    def pairs(self, split: str) -> list[Pair]:
        """The (image, mask) pairs of `split` (not yet checked: see `mobileseg.data.checks`).

        Raises:
            DataError: the split does not exist here (the message lists those that do),
                or its listing cannot be read.
        """
        if split not in self.splits():
            have = ", ".join(self.splits()) or "none"
            raise DataError(f"{self.spec}: no split {split!r} (this data set has: {have})")
        if split not in self._pairs:
            self._pairs[split] = self._list_pairs(split)
        return list(self._pairs[split])

    def load_pair(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """Read one pair with PIL: (RGB image uint8 [H, W, 3], internal ids uint8 [H, W]).

        Meant for evaluation, prediction and plots; training reads through the
        tf.data pipeline. Files are not validated here (run the checks first).
        """
        with Image.open(pair.image) as im:
            image = np.asarray(im.convert("RGB"))
        with Image.open(pair.mask) as im:
            raw = np.asarray(im)
        if raw.ndim != 2:
            raise DataError.of(Problem(pair.mask, f"mask has shape {raw.shape}; expected one channel of class ids"))
        return image, self.label_table[raw]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} classes={self.num_classes} splits={','.join(self.splits())}>"
