"""Tiny data sets written in each real on-disk layout, for the reader, check and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (6, 8)  # height, width of every fake image


def write_image(path: Path, seed: int, size=SIZE, fmt: str | None = None) -> np.ndarray:
    """Write a random RGB image (PNG, or JPEG by suffix) and return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def write_mask(path: Path, values, size=SIZE) -> np.ndarray:
    """Write a single-channel ('L') PNG whose pixels cycle through `values`; return them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values, np.uint8)
    raw = values[np.arange(size[0] * size[1]) % len(values)].reshape(size)
    Image.fromarray(raw, mode="L").save(path)
    return raw


def make_camvid(root: Path, counts=None) -> Path:
    """CamVid SegNet layout with .txt lists using the /SegNet/CamVid/ prefix; raw ids 0..11."""
    counts = counts or {"train": 3, "val": 2, "test": 1}
    for split, n in counts.items():
        lines = []
        for i in range(n):
            name = f"0001TP_{i:06d}.png"
            write_image(root / split / name, seed=i)
            write_mask(root / f"{split}annot" / name, values=range(12))
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_cityscapes(root: Path, train_ids: bool, counts=None) -> Path:
    """Cityscapes leftImg8bit/ + gtFine/; labelIds always, labelTrainIds if `train_ids`."""
    counts = counts or {"train": 2, "val": 1}
    for split, n in counts.items():
        for i in range(n):
            city = "aachen" if split == "train" else "lindau"
            stem = f"{city}_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", seed=i)
            gt = root / "gtFine" / split / city
            write_mask(gt / f"{stem}_gtFine_labelIds.png", values=[0, 7, 8, 26, 33])
            if train_ids:
                write_mask(gt / f"{stem}_gtFine_labelTrainIds.png", values=[255, 0, 1, 13, 18])
    return root


def make_ade20k(root: Path, counts=None) -> Path:
    """ADEChallengeData2016 with JPEG images and raw labels 0..150."""
    counts = counts or {"training": 2, "validation": 1}
    base = root / "ADEChallengeData2016"
    for folder, n in counts.items():
        prefix = "ADE_train" if folder == "training" else "ADE_val"
        for i in range(n):
            write_image(base / "images" / folder / f"{prefix}_{i + 1:08d}.jpg", seed=i)
            write_mask(base / "annotations" / folder / f"{prefix}_{i + 1:08d}.png", values=[0, 1, 2, 150])
    return root


CLASSES_YAML = "names: [background, leaf, stem]\ncolors: [[0, 0, 0], [0, 200, 0], [120, 80, 0]]\nignore_index: 9\n"


def make_folder(root: Path, split: bool, count: int = 3) -> Path:
    """images/ + masks/ + classes.yaml (3 classes, raw ignore 9), split or unsplit."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(CLASSES_YAML)
    for s in ("train", "val") if split else ("",):
        for i in range(count):
            write_image(root / "images" / s / f"plant{i}.jpg", seed=i)
            write_mask(root / "masks" / s / f"plant{i}.png", values=[0, 1, 2, 9])
    return root
