"""Your own data: a folder of images, masks and a classes.yaml (`folder:DIR`).

Layout, split into subfolders (any of train/, val/, test/)::

    DIR/classes.yaml
    DIR/images/train/STEM.jpg    DIR/masks/train/STEM.png
    DIR/images/val/...           DIR/masks/val/...

or a single unsplit set::

    DIR/classes.yaml
    DIR/images/STEM.jpg          DIR/masks/STEM.png

An image and its mask share the file stem. Images may be PNG, JPEG or BMP; masks are
8-bit single-channel ('L') PNGs whose values are class ids 0..len(names)-1, or the
ignore value. An unsplit set is divided deterministically by file stem: a stem whose
CRC-32 is divisible by 10 (about 10% of them) goes to `val`, the rest to `train`, so a
file keeps its split when others are added; if that leaves `val` empty and there are at
least two stems, the stem with the smallest CRC-32 is moved to `val`. There is no
`test` split then.

classes.yaml::

    names: [background, road, car]   # required: one name per class, in id order
    colors: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]   # optional RGB per class
    ignore_index: 255                # optional (default 255): the raw mask value to ignore;
                                     # it must not be a class id (>= len(names))
"""

from __future__ import annotations

import zlib
from pathlib import Path

from mobileseg.bounded_yaml import read_yaml
from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError, Problem
from mobileseg.data.source import IMAGE_SUFFIXES, SPLITS, Pair, SegmentationSource, existing_dir
from mobileseg.short_repr import short_repr
from mobileseg.text_files import TextFileError

CLASSES_FILE = "classes.yaml"
CLASSES_KEYS = ("names", "colors", "ignore_index")


def default_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct RGB colours for classes without given colours (the PASCAL VOC bit pattern).

    Args:
        num_classes: how many colours.

    Example:
        >>> default_colors(3)
        [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    """
    colors = []
    for i in range(num_classes):
        r = g = b = 0
        c = i
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colors.append((r, g, b))
    return colors


def read_classes(path: Path) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """Read and validate a classes.yaml: (names, colors, raw ignore value).

    Args:
        path: the classes.yaml file.

    Raises:
        DataError: missing file, bad YAML, unknown or missing keys, or bad values,
            naming the file and the key.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "classes.yaml"
        >>> _ = p.write_text("names: [bg, cat]\\nignore_index: 9\\n")
        >>> read_classes(p)
        (['bg', 'cat'], [(0, 0, 0), (128, 0, 0)], 9)
        >>> _ = p.write_text("names: [bg]\\ncolours: [[1, 2, 3]]\\n")
        >>> read_classes(p)
        Traceback (most recent call last):
        ...
        mobileseg.data.problems.DataError: ...classes.yaml: unknown key 'colours' (allowed: names, colors, ignore_index)
    """

    def fail(problem: str):
        raise DataError.of(Problem(path, problem))

    if not path.is_file():
        fail("classes file not found (a folder data set needs names, and optionally colors and ignore_index)")
    try:
        spec = read_yaml(path)
    except TextFileError as error:
        fail(error.problem)
    if not isinstance(spec, dict):
        fail("expected a mapping with keys names, colors, ignore_index")
    unknown = sorted((key for key in spec if key not in CLASSES_KEYS), key=str)
    if unknown:
        fail(f"unknown key {', '.join(map(short_repr, unknown))} (allowed: {', '.join(CLASSES_KEYS)})")
    if "names" not in spec:
        fail("missing key 'names' (one name per class, in id order)")
    names = spec["names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        fail("'names' must be a non-empty list of non-empty strings")
    if len(names) > 255:
        fail(f"'names' has {len(names)} classes; at most 255 fit an 8-bit mask with an ignore value")
    if len(set(names)) != len(names):
        fail(f"'names' has duplicates: {short_repr(sorted({n for n in names if names.count(n) > 1}))}")
    colors = spec.get("colors")
    if colors is None:
        colors = default_colors(len(names))
    else:
        ok = isinstance(colors, list) and all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors
        )
        if not ok or len(colors) != len(names):
            fail(f"'colors' must list {len(names)} RGB triples of integers 0..255, one per name")
        colors = [tuple(c) for c in colors]
    ignore = spec.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore, int) or not len(names) <= ignore <= 255:
        fail(f"'ignore_index' must be an integer in {len(names)}..255 (not a class id), got {short_repr(ignore)}")
    return names, colors, ignore


def validation_stems(stems: list[str]) -> set[str]:
    """The stems of an unsplit folder that form `val` (see the module docstring).

    Args:
        stems: all file stems of the unsplit set.

    Example:
        >>> sorted(validation_stems([f"img{i}" for i in range(30)]))
        ['img11']
        >>> sorted(validation_stems(["a", "b"]))  # no CRC-32 divisible by 10: the smallest
        ['b']
    """
    crc = {s: zlib.crc32(s.encode("utf-8")) for s in stems}
    val = {s for s, c in crc.items() if c % 10 == 0}
    if not val and len(stems) >= 2:
        val = {min(stems, key=lambda s: (crc[s], s))}
    return val


class FolderSource(SegmentationSource):
    """A user's data set: images/ and masks/ with matching stems and a classes.yaml.

    Args:
        root: the folder holding classes.yaml, images/ and masks/.

    Attributes:
        is_split: True for the images/train, images/val... layout, False for one set
            divided by stem (see the module docstring).

    Raises:
        DataError: missing folder, images/, masks/ or classes.yaml, or an invalid classes.yaml.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "classes.yaml").write_text("names: [background, leaf]\\n")
        >>> for sub, ext in (("images", "jpg"), ("masks", "png")):
        ...     (d / sub).mkdir()
        ...     for i in range(12):
        ...         (d / sub / f"img{i}.{ext}").touch()
        >>> src = FolderSource(d)
        >>> src.is_split, src.splits(), len(src.pairs("train")), len(src.pairs("val"))
        (False, ('train', 'val'), 11, 1)
    """

    def __init__(self, root: str | Path):
        root = existing_dir(root, "folder")
        names, colors, ignore = read_classes(root / CLASSES_FILE)
        for sub in ("images", "masks"):
            if not (root / sub).is_dir():
                raise DataError.of(Problem(root / sub, "folder not found (a folder data set has images/ and masks/)"))
        super().__init__(
            kind="folder",
            root=root,
            class_names=names,
            colors=colors,
            label_mapping={**{i: i for i in range(len(names))}, ignore: IGNORE_INDEX},
            raw_labels=f"classes 0..{len(names) - 1} and ignore {ignore}",
        )
        self.is_split = any((root / sub / s).is_dir() for sub in ("images", "masks") for s in SPLITS)

    def splits(self) -> tuple[str, ...]:
        if self.is_split:
            return tuple(s for s in SPLITS if (self.root / "images" / s).is_dir() or (self.root / "masks" / s).is_dir())
        return ("train", "val")

    def _stems(self, image_dir: Path, mask_dir: Path) -> dict[str, Pair]:
        images: dict[str, Path] = {}
        for p in sorted(image_dir.iterdir()) if image_dir.is_dir() else []:
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                if p.stem in images:
                    raise DataError.of(Problem(p, f"two images with stem {p.stem!r}: {images[p.stem].name}, {p.name}"))
                images[p.stem] = p
        masks = {p.stem: p for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else {}
        return {
            stem: Pair(images.get(stem, image_dir / f"{stem}.png"), masks.get(stem, mask_dir / f"{stem}.png"))
            for stem in sorted(images.keys() | masks.keys())
        }

    def split_path(self, split: str) -> Path:
        return self.root / "images" / split if self.is_split else self.root / "images"

    def _list_pairs(self, split: str) -> list[Pair]:
        if self.is_split:
            return list(self._stems(self.root / "images" / split, self.root / "masks" / split).values())
        pairs = self._stems(self.root / "images", self.root / "masks")
        val = validation_stems(list(pairs))
        return [pair for stem, pair in pairs.items() if (stem in val) == (split == "val")]
