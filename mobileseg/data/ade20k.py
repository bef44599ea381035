"""ADE20K scene parsing, 150 classes (`ade20k:DIR`).

Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017; the SceneParsing
benchmark release ADEChallengeData2016. Layout::

    DIR/images/training/ADE_train_00000001.jpg      DIR/annotations/training/ADE_train_00000001.png
    DIR/images/validation/ADE_val_00000001.jpg      DIR/annotations/validation/ADE_val_00000001.png

DIR may be ADEChallengeData2016 itself or the folder that contains it. training is the
`train` split (20210 pairs), validation is `val` (2000); there is no labelled test split.
Masks hold 0 = "other" (ignored) and 1..150 = the classes, which become ids 0..149.
"""

from __future__ import annotations

from pathlib import Path

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError, Problem
from mobileseg.data.source import Pair, SegmentationSource, existing_dir

# The 150 class names of objectInfo150 (first name of each entry), in raw-value order 1..150,
# as used by the benchmark's toolkit and by mmsegmentation's ADE20KDataset.
CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# The benchmark's color150 palette (CSAIL semantic-segmentation-pytorch data/color150.mat,
# as reproduced in mmsegmentation's ADE20KDataset), RGB per class in the same order.
COLORS = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)  # fmt: skip

SPLIT_FOLDERS = {"train": "training", "val": "validation"}
"""mobileseg split -> ADEChallengeData2016 folder name."""


class ADE20KSource(SegmentationSource):
    """ADE20K (ADEChallengeData2016), 150 classes; raw 0 is ignored, raw k is class k-1.

    Args:
        root: ADEChallengeData2016, or a folder containing it.

    Raises:
        DataError: the folder, images/ or annotations/ is missing.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "ADEChallengeData2016"
        >>> for sub, ext in (("images", "jpg"), ("annotations", "png")):
        ...     (d / sub / "validation").mkdir(parents=True)
        ...     (d / sub / "validation" / f"ADE_val_00000001.{ext}").touch()
        >>> src = ADE20KSource(d.parent)
        >>> src.splits(), src.num_classes, src.pairs("val")[0].image.name
        (('val',), 150, 'ADE_val_00000001.jpg')
        >>> src.label_table[[0, 1, 150]].tolist()
        [255, 0, 149]
    """

    def __init__(self, root: str | Path):
        root = existing_dir(root, "ade20k")
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        for sub in ("images", "annotations"):
            if not (root / sub).is_dir():
                raise DataError.of(Problem(root / sub, "ade20k folder not found (expected images/ and annotations/)"))
        super().__init__(
            kind="ade20k",
            root=root,
            class_names=CLASS_NAMES,
            colors=COLORS,
            label_mapping={0: IGNORE_INDEX, **{k: k - 1 for k in range(1, len(CLASS_NAMES) + 1)}},
            raw_labels=f"classes 1..{len(CLASS_NAMES)} and ignore 0",
        )

    def splits(self) -> tuple[str, ...]:
        return tuple(
            s for s, folder in SPLIT_FOLDERS.items()
            if (self.root / "images" / folder).is_dir() or (self.root / "annotations" / folder).is_dir()
        )  # fmt: skip

    def split_path(self, split: str) -> Path:
        return self.root / "images" / SPLIT_FOLDERS[split]

    def _list_pairs(self, split: str) -> list[Pair]:
        folder = SPLIT_FOLDERS[split]
        image_dir, mask_dir = self.root / "images" / folder, self.root / "annotations" / folder
        stems = {p.stem for p in image_dir.glob("*.jpg")} | {p.stem for p in mask_dir.glob("*.png")}
        return [Pair(image_dir / f"{stem}.jpg", mask_dir / f"{stem}.png") for stem in sorted(stems)]
