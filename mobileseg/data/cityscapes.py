"""Cityscapes fine annotations, 19 train classes (`cityscapes:DIR`).

Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene Understanding", CVPR 2016.

Layout (as downloaded: leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip)::

    DIR/leftImg8bit/{train,val,test}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
    DIR/gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelTrainIds.png   (if prepared)
    DIR/gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png        (always shipped)

When any `*_gtFine_labelTrainIds.png` exists under gtFine/ (written by cityscapesscripts'
createTrainIdLabelImgs), those masks are used (values 0..18, 255 = ignore). Otherwise the
shipped `*_labelIds.png` masks are mapped with `LABEL_ID_TO_TRAIN_ID`, the official table.
"""

from __future__ import annotations

from pathlib import Path

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError, Problem
from mobileseg.data.source import SPLITS, Pair, SegmentationSource, existing_dir

# labelId -> trainId for the 34 labels with an id (0..33), copied from the official
# cityscapesscripts/helpers/labels.py (github.com/mcordts/cityscapesScripts), `labels`
# list: (id, trainId) of each Label. trainId 255 marks labels ignored in training and
# evaluation. ('license plate' has id -1 and never appears in labelIds images.)
LABEL_ID_TO_TRAIN_ID = {
    0: 255,  # unlabeled
    1: 255,  # ego vehicle
    2: 255,  # rectification border
    3: 255,  # out of roi
    4: 255,  # static
    5: 255,  # dynamic
    6: 255,  # ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255,  # parking
    10: 255,  # rail track
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    14: 255,  # guard rail
    15: 255,  # bridge
    16: 255,  # tunnel
    17: 5,  # pole
    18: 255,  # polegroup
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    29: 255,  # caravan
    30: 255,  # trailer
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
"""The 19 Cityscapes train classes, in trainId order."""

COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
"""The official Cityscapes colour of each train class (labels.py)."""

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"


class CityscapesSource(SegmentationSource):
    """Cityscapes (gtFine), 19 classes, read from the official folder layout.

    Args:
        root: the folder holding leftImg8bit/ and gtFine/.

    Attributes:
        uses_train_ids: True when labelTrainIds masks are read, False when labelIds
            masks are mapped with the official table.

    Raises:
        DataError: the folder, leftImg8bit/ or gtFine/ is missing.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for sub, suffix in (("leftImg8bit", IMAGE_SUFFIX), ("gtFine", LABEL_ID_SUFFIX)):
        ...     (d / sub / "val" / "lindau").mkdir(parents=True)
        ...     (d / sub / "val" / "lindau" / f"lindau_000000_000019{suffix}").touch()
        >>> src = CityscapesSource(d)
        >>> src.splits(), src.uses_train_ids, src.pairs("val")[0].mask.name
        (('val',), False, 'lindau_000000_000019_gtFine_labelIds.png')
        >>> int(src.label_table[26]), src.class_names[13]  # labelId 26 is car, trainId 13
        (13, 'car')
    """

    def __init__(self, root: str | Path):
        root = existing_dir(root, "cityscapes")
        for sub in ("leftImg8bit", "gtFine"):
            if not (root / sub).is_dir():
                raise DataError.of(
                    Problem(root / sub, "cityscapes folder not found (expected leftImg8bit/ and gtFine/)")
                )
        self.uses_train_ids = next((root / "gtFine").rglob(f"*{TRAIN_ID_SUFFIX}"), None) is not None
        if self.uses_train_ids:
            mapping = {**{i: i for i in range(len(CLASS_NAMES))}, IGNORE_INDEX: IGNORE_INDEX}
            raw = f"labelTrainIds 0..{len(CLASS_NAMES) - 1} and ignore 255"
        else:
            mapping, raw = LABEL_ID_TO_TRAIN_ID, "labelIds 0..33"
        super().__init__(
            kind="cityscapes", root=root, class_names=CLASS_NAMES, colors=COLORS, label_mapping=mapping, raw_labels=raw
        )

    @property
    def mask_suffix(self) -> str:
        """File name ending of the masks read: labelTrainIds or labelIds."""
        return TRAIN_ID_SUFFIX if self.uses_train_ids else LABEL_ID_SUFFIX

    def splits(self) -> tuple[str, ...]:
        present = [s for s in SPLITS if (self.root / "leftImg8bit" / s).is_dir() or (self.root / "gtFine" / s).is_dir()]
        return tuple(present)

    def split_path(self, split: str) -> Path:
        return self.root / "leftImg8bit" / split

    def _list_pairs(self, split: str) -> list[Pair]:
        image_dir, mask_dir = self.root / "leftImg8bit" / split, self.root / "gtFine" / split
        stems = set()  # "CITY/CITY_SEQ_FRAME", from either side so missing partners show
        for folder, suffix in ((image_dir, IMAGE_SUFFIX), (mask_dir, self.mask_suffix)):
            stems.update(f"{p.parent.name}/{p.name[: -len(suffix)]}" for p in folder.glob(f"*/*{suffix}"))
        return [
            Pair(image_dir / f"{stem}{IMAGE_SUFFIX}", mask_dir / f"{stem}{self.mask_suffix}") for stem in sorted(stems)
        ]
