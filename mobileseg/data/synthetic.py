"""Procedurally drawn street scenes with exact masks (`synthetic:N`), for tests and demos.

The scenes imitate a CamVid / Cityscapes dashboard-camera view: a sky gradient above a
horizon, building facades with window grids along both sides, a road in perspective
with dashed lane markings, sidewalks with paving joints, and, front to back, trees,
poles, cars on the road and pedestrians on the sidewalks, sized by their distance.
Some clutter is left unlabelled (void), as annotators do, and is mapped to the ignore
index. Each class has its own colour and texture statistics (smooth blue sky, windowed
facades, dark fine-grained asphalt, mottled green foliage, saturated smooth car paint,
thin grey poles, skin-and-clothes people), so a tiny network learns them within a few
epochs while still having to use shape and context for the harder pairs.

The spec is `synthetic:N` with optional comma-separated `size=HxW` (default 120x160) and
`seed=S` (default 0), e.g. `synthetic:200,size=96x128,seed=3`. N scenes are split into
train / val / test (15% each for val and test, at least one each when N >= 3). Scene i of
a split depends only on (seed, split, i), not on N, so growing N keeps earlier scenes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError
from mobileseg.data.source import SPLITS, Pair, SegmentationSource

CLASS_NAMES = ("sky", "building", "road", "sidewalk", "vegetation", "car", "pole", "person")
"""The synthetic classes, in id order."""

SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, CAR, POLE, PERSON = range(len(CLASS_NAMES))

COLORS = (
    (70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232),
    (107, 142, 35), (0, 0, 142), (153, 153, 153), (220, 20, 60),
)  # fmt: skip
"""Display colours (the Cityscapes colours of the same classes)."""

DEFAULT_SIZE = (120, 160)

_FACADES = np.array([(150, 75, 55), (185, 165, 125), (120, 120, 128), (90, 82, 75), (165, 140, 120)], np.float32)
_PAINTS = np.array(
    [(180, 30, 30), (30, 60, 170), (220, 190, 40), (225, 225, 230), (30, 30, 35), (40, 120, 60)], np.float32
)
_SKINS = np.array([(225, 185, 150), (180, 130, 95), (120, 80, 55)], np.float32)
_CLOTHES = np.array([(200, 40, 60), (40, 40, 90), (230, 230, 220), (60, 140, 160), (140, 90, 40)], np.float32)


class _Canvas:
    """An image and its mask painted together, so the mask is exact."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng = rng
        self.h, self.w = height, width
        # Pixel-centre coordinates as a column and a row: expressions broadcast to [H, W].
        self.y = np.arange(height, dtype=np.float32)[:, None] + 0.5
        self.x = np.arange(width, dtype=np.float32)[None, :] + 0.5
        self.image = np.zeros((height, width, 3), np.float32)
        self.mask = np.zeros((height, width), np.uint8)
        self.grain = rng.normal(size=(height, width, 1)).astype(np.float32)  # grey texture
        self.speckle = rng.normal(size=(height, width, 3)).astype(np.float32)  # coloured texture

    def paint(self, region: np.ndarray, label: int, colour, grain: float = 0.0, speckle: float = 0.0):
        colour = np.asarray(colour, np.float32)
        region = np.broadcast_to(region, self.mask.shape)
        if colour.ndim == 3:  # a colour per pixel
            pixels = np.broadcast_to(colour, self.image.shape)[region]
        else:
            pixels = np.broadcast_to(colour, (int(region.sum()), 3))
        if grain:
            pixels = pixels + grain * self.grain[region]
        if speckle:
            pixels = pixels + speckle * self.speckle[region]
        self.image[region] = pixels
        self.mask[region] = label

    def box(self, x0, x1, y0, y1):
        return (self.x >= x0) & (self.x < x1) & (self.y >= y0) & (self.y < y1)

    def ellipse(self, cx, cy, rx, ry):
        return ((self.x - cx) / max(rx, 0.5)) ** 2 + ((self.y - cy) / max(ry, 0.5)) ** 2 <= 1.0


def render_scene(rng: np.random.Generator, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1]):
    """Draw one street scene and its exact label map (see the module docstring).

    Args:
        rng: the generator all randomness comes from (same state, same scene).
        height, width: size in pixels (at least 16x16).

    Returns:
        (image uint8 [H, W, 3] RGB, mask uint8 [H, W] with ids 0..7 and `IGNORE_INDEX`).

    Example:
        >>> image, mask = render_scene(np.random.default_rng(0), 48, 64)
        >>> image.shape, mask.shape, int(mask[0, 32]) == SKY, int(mask[-1, 32]) in (ROAD, CAR)
        ((48, 64, 3), (48, 64), True, True)
    """
    if height < 16 or width < 16:
        raise ValueError(f"synthetic scenes need at least 16x16 pixels, got {height}x{width}")
    c = _Canvas(rng, height, width)
    H, W, y, x = height, width, c.y, c.x
    horizon = rng.uniform(0.38, 0.5) * H
    vanish_x, bottom_x = rng.uniform(0.4, 0.6) * W, rng.uniform(0.35, 0.65) * W
    half_road_bottom = rng.uniform(0.3, 0.5) * W

    # Sky: a vertical gradient from deep to pale blue, a few soft clouds.
    t = np.clip(y / horizon, 0, 1)[..., None]
    top, low = np.array([45, 95, 190]) + rng.normal(0, 8, 3), np.array([160, 195, 235]) + rng.normal(0, 8, 3)
    c.paint(np.ones((H, W), bool), SKY, top * (1 - t) + low * t, grain=1.5)
    for _ in range(rng.integers(0, 3)):
        cx, cy = rng.uniform(0, W), rng.uniform(0, 0.6) * horizon
        cloud = c.ellipse(cx, cy, rng.uniform(0.08, 0.2) * W, rng.uniform(2, 0.12 * H))
        c.paint(cloud, SKY, (225, 230, 240), grain=3)

    # Buildings: facades along both sides, windows in a grid, gaps of sky between some.
    gap = rng.uniform(0.04, 0.12) * W
    for left, right in ((0.0, vanish_x - gap), (vanish_x + gap, float(W))):
        x0 = left
        while x0 < right - 2:
            x1 = min(right, x0 + rng.uniform(0.1, 0.28) * W)
            if rng.uniform() > 0.15:
                roof = rng.uniform(0.05, 0.75) * horizon
                facade = c.box(x0, x1, roof, horizon + 1)
                colour = _FACADES[rng.integers(len(_FACADES))] + rng.normal(0, 10, 3)
                c.paint(facade, BUILDING, colour, grain=5)
                sx, sy = rng.uniform(5, 9) * W / 160, rng.uniform(6, 10) * H / 120
                windows = facade & ((x - x0) % sx > 0.45 * sx) & ((y - roof) % sy > 0.45 * sy) & (y < horizon - 2)
                lit = rng.uniform() < 0.3
                c.paint(windows, BUILDING, (215, 200, 120) if lit else (45, 55, 75), grain=4)
            x0 = x1

    # Ground: road in perspective with dashed centre line, sidewalks with paving joints.
    depth = np.clip((y - horizon) / (H - horizon), 0, None)
    centre = vanish_x + (bottom_x - vanish_x) * depth
    half_road = half_road_bottom * depth
    ground = y >= horizon
    road = ground & (np.abs(x - centre) < half_road)
    c.paint(ground & ~road, SIDEWALK, np.array([175, 165, 150]) + rng.normal(0, 8, 3), grain=4)
    joints = ground & ~road & (((x - centre) * 8 / W / np.maximum(depth, 0.02)) % 1 < 0.12)
    c.paint(joints, SIDEWALK, (130, 122, 112), grain=3)
    c.paint(road, ROAD, np.full(3, rng.uniform(55, 85)), grain=7)
    dash_phase = (3.0 / np.maximum(depth, 0.02)) % 1.0
    dashes = road & (np.abs(x - centre) < np.maximum(0.6, 0.02 * W * depth)) & (dash_phase < 0.5)
    c.paint(dashes, ROAD, (225, 225, 215), grain=4)

    def side_x(base_y, inside_road: bool):
        d = (base_y - horizon) / (H - horizon)
        cx, half = vanish_x + (bottom_x - vanish_x) * d, half_road_bottom * d
        if inside_road:
            return cx + rng.uniform(-0.6, 0.6) * half
        side = rng.choice([-1, 1])
        return cx + side * (half + rng.uniform(0.03, 0.3) * W)

    # Objects, far to near so nearer ones occlude: (base y, kind).
    kinds = ["tree"] * rng.integers(0, 4) + ["pole"] * rng.integers(0, 4)
    kinds += ["car"] * rng.integers(0, 4) + ["person"] * rng.integers(0, 4) + ["clutter"] * rng.integers(0, 2)
    objects = sorted((rng.uniform(horizon + 0.08 * (H - horizon), H + 0.1 * H), kind) for kind in kinds)
    for base, kind in objects:
        s = (base - horizon) / (H - horizon)  # 0 at the horizon, 1 at the bottom edge
        if kind == "tree":
            bx = side_x(base, False)
            trunk_h, trunk_w = s * 0.3 * H + 3, max(1.0, s * 0.025 * W)
            c.paint(c.box(bx - trunk_w, bx + trunk_w, base - trunk_h, base), VEGETATION, (85, 60, 35), grain=6)
            r = s * 0.13 * W + 3
            crown = c.ellipse(bx + rng.normal(0, 0.2) * r, base - trunk_h - 0.8 * r, r, 1.2 * r)
            green = np.array([55, 125, 40]) + rng.normal(0, 10, 3)
            c.paint(crown, VEGETATION, green, speckle=22)
        elif kind == "pole":
            bx = side_x(base, False)
            height_, half_w = s * 0.65 * H + 4, max(0.5, s * 0.012 * W)
            shade = rng.uniform(100, 150)
            c.paint(c.box(bx - half_w, bx + half_w, base - height_, base), POLE, np.full(3, shade), grain=2)
            arm = c.box(bx - 6 * half_w, bx + half_w, base - height_, base - height_ + max(1.0, half_w))
            c.paint(arm, POLE, np.full(3, shade), grain=2)
        elif kind == "car":
            bx = side_x(base, True)
            w = s * 0.32 * W + 5
            body_h, cabin_h = 0.32 * w, 0.22 * w
            paint = _PAINTS[rng.integers(len(_PAINTS))] + rng.normal(0, 8, 3)
            c.paint(c.box(bx - w / 2, bx + w / 2, base - body_h, base - 0.08 * w), CAR, paint, grain=2)
            cabin = c.box(bx - 0.33 * w, bx + 0.33 * w, base - body_h - cabin_h, base - body_h + 1)
            c.paint(cabin, CAR, paint * 0.8, grain=2)
            glass = c.box(bx - 0.28 * w, bx + 0.28 * w, base - body_h - 0.8 * cabin_h, base - body_h)
            c.paint(glass, CAR, (40, 50, 62), grain=3)
            for wx in (bx - 0.3 * w, bx + 0.3 * w):
                c.paint(c.ellipse(wx, base - 0.08 * w, 0.1 * w, 0.08 * w), CAR, (20, 20, 22), grain=2)
        elif kind == "person":
            bx = side_x(base, False)
            h = s * 0.38 * H + 6
            legs_w, torso_w = max(0.6, 0.07 * h), max(1.0, 0.14 * h)
            trousers = (35, 38, 60) if rng.uniform() < 0.7 else (20, 20, 20)
            for dx in (-legs_w, legs_w):
                leg = c.box(bx + dx - legs_w * 0.8, bx + dx + legs_w * 0.8, base - 0.45 * h, base)
                c.paint(leg, PERSON, trousers, grain=3)
            shirt = _CLOTHES[rng.integers(len(_CLOTHES))] + rng.normal(0, 10, 3)
            c.paint(c.box(bx - torso_w, bx + torso_w, base - 0.85 * h, base - 0.43 * h), PERSON, shirt, grain=3)
            skin = _SKINS[rng.integers(len(_SKINS))]
            c.paint(c.ellipse(bx, base - 0.92 * h, 0.08 * h, 0.09 * h), PERSON, skin, grain=2)
        else:  # unlabelled clutter (bins, boxes, signs): void in the mask
            bx = side_x(base, False)
            r = s * 0.06 * W + 2
            blob = c.ellipse(bx, base - r, r * rng.uniform(0.6, 1.6), r)
            c.paint(blob, IGNORE_INDEX, rng.uniform(30, 230, 3), speckle=10)

    gain = rng.uniform(0.85, 1.15)
    image = c.image * gain + rng.normal(0, 2.0, c.image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), c.mask


def split_sizes(num_scenes: int) -> dict[str, int]:
    """How many of `num_scenes` go to each split (splits with none are left out).

    Args:
        num_scenes: N of `synthetic:N`.

    Example:
        >>> split_sizes(100), split_sizes(2)
        ({'train': 70, 'val': 15, 'test': 15}, {'train': 2})
    """
    held_out = max(1, num_scenes * 15 // 100) if num_scenes >= 3 else 0
    sizes = {"train": num_scenes - 2 * held_out, "val": held_out, "test": held_out}
    return {k: v for k, v in sizes.items() if v > 0}


def parse_spec(arg: str) -> dict:
    """Parse the part after `synthetic:` into SyntheticSource arguments.

    Args:
        arg: "N" with optional ",size=HxW" and ",seed=S".

    Raises:
        DataError: anything else, with the accepted form.

    Example:
        >>> parse_spec("200,size=96x128,seed=3")
        {'num_scenes': 200, 'size': (96, 128), 'seed': 3}
    """
    form = "expected synthetic:N[,size=HxW][,seed=S], e.g. synthetic:200,size=120x160"
    head, *options = arg.split(",")
    if not re.fullmatch(r"\d+", head.strip()) or int(head) < 1:
        raise DataError(f"synthetic:{arg}: N must be a positive integer; {form}")
    kwargs: dict = {"num_scenes": int(head)}
    for option in options:
        key, _, value = option.strip().partition("=")
        if key == "size" and (m := re.fullmatch(r"(\d+)x(\d+)", value)):
            kwargs["size"] = (int(m[1]), int(m[2]))
        elif key == "seed" and re.fullmatch(r"\d+", value):
            kwargs["seed"] = int(value)
        else:
            raise DataError(f"synthetic:{arg}: bad option {option!r}; {form}")
    return kwargs


class SyntheticSource(SegmentationSource):
    """N generated street scenes (see the module docstring), deterministic by seed.

    Pairs are names, not files (`in_memory` is True): `load_pair` draws the scene.

    Args:
        num_scenes: N, split by `split_sizes`.
        size: (height, width) of every scene.
        seed: base seed; scene i of split s is drawn from `np.random.default_rng([seed, s, i])`.

    Example:
        >>> src = SyntheticSource(20, size=(32, 48), seed=1)
        >>> images, masks = src.arrays("val")
        >>> images.shape, masks.shape, src.class_names[:3]
        ((3, 32, 48, 3), (3, 32, 48), ('sky', 'building', 'road'))
        >>> bool((SyntheticSource(20, size=(32, 48), seed=1).arrays("val")[0] == images).all())
        True
    """

    in_memory = True

    def __init__(self, num_scenes: int, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0):
        if num_scenes < 1:
            raise DataError(f"synthetic:{num_scenes}: N must be a positive integer")
        self.num_scenes, self.size, self.seed = int(num_scenes), (int(size[0]), int(size[1])), int(seed)
        if min(self.size) < 16:
            raise DataError(f"synthetic: size {size} too small; scenes need at least 16x16 pixels")
        root = str(self.num_scenes)
        if self.size != DEFAULT_SIZE:
            root += f",size={self.size[0]}x{self.size[1]}"
        if self.seed:
            root += f",seed={self.seed}"
        super().__init__(
            kind="synthetic",
            root=root,
            class_names=CLASS_NAMES,
            colors=COLORS,
            label_mapping={**{i: i for i in range(len(CLASS_NAMES))}, IGNORE_INDEX: IGNORE_INDEX},
            raw_labels=f"classes 0..{len(CLASS_NAMES) - 1} and ignore {IGNORE_INDEX}",
        )
        self._sizes = split_sizes(self.num_scenes)

    def splits(self) -> tuple[str, ...]:
        return tuple(self._sizes)

    def _list_pairs(self, split: str) -> list[Pair]:
        base = Path(f"synthetic-seed{self.seed}") / split
        return [Pair(base / f"scene_{i:05d}.png", base / f"scene_{i:05d}_mask.png") for i in range(self._sizes[split])]

    def load_pair(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """Draw the scene a pair names: (image uint8 [H, W, 3], mask uint8 [H, W])."""
        split, index = pair.image.parent.name, int(pair.image.stem.split("_")[1])
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        return render_scene(rng, *self.size)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """All scenes of a split: (images uint8 [N, H, W, 3], masks uint8 [N, H, W])."""
        drawn = [self.load_pair(p) for p in self.pairs(split)]
        return np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn])
