"""Synthetic street scenes: deterministic, exact masks, and learnable from colour alone."""

import numpy as np
import pytest

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError
from mobileseg.data.synthetic import CLASS_NAMES, SKY, SyntheticSource, parse_spec, render_scene
from mobileseg.training.miou import ConfusionMatrix


def test_same_seed_same_scenes_other_seed_other_scenes():
    a = SyntheticSource(20, size=(40, 56), seed=3).arrays("train")
    b = SyntheticSource(20, size=(40, 56), seed=3).arrays("train")
    c = SyntheticSource(20, size=(40, 56), seed=4).arrays("train")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_a_scene_does_not_depend_on_n():
    small = SyntheticSource(10, size=(32, 48)).arrays("val")
    large = SyntheticSource(40, size=(32, 48)).arrays("val")
    assert np.array_equal(small[0][0], large[0][0]) and np.array_equal(small[1][0], large[1][0])


def test_masks_use_every_class_and_the_ignore_index_only():
    _, masks = SyntheticSource(60, size=(48, 64)).arrays("train")
    values = set(np.unique(masks).tolist())
    assert values == set(range(len(CLASS_NAMES))) | {IGNORE_INDEX}
    assert (masks[:, 0, :] == SKY).mean() > 0.5  # the top row is mostly sky


def test_mask_is_exact_where_a_class_is_painted_flat():
    image, mask = render_scene(np.random.default_rng(5), 60, 80)
    assert image.dtype == np.uint8 and mask.shape == (60, 80)
    sky = image[mask == SKY].astype(float)
    assert sky[:, 2].mean() > sky[:, 0].mean() + 40  # sky pixels are blue


def test_classes_separate_by_colour_statistics():
    """A per-pixel nearest-colour-mean classifier fitted on train beats chance by far on val."""
    src = SyntheticSource(80, size=(48, 64))
    train_images, train_masks = src.arrays("train")
    val_images, val_masks = src.arrays("val")
    means = np.stack([train_images[train_masks == c].mean(0) for c in range(src.num_classes)])
    distance = ((val_images[..., None, :].astype(float) - means) ** 2).sum(-1)
    prediction = distance.argmin(-1)
    cm = ConfusionMatrix(src.num_classes).update(val_masks, prediction)
    assert cm.miou() > 0.3 and cm.pixel_accuracy() > 0.6


def test_split_sizes_and_spec_parsing():
    src = SyntheticSource(**parse_spec("20,size=24x32,seed=2"))
    assert {s: len(src.pairs(s)) for s in src.splits()} == {"train": 14, "val": 3, "test": 3}
    assert src.spec == "synthetic:20,size=24x32,seed=2" and src.in_memory
    for bad in ("0", "x", "10,size=24", "10,colour=red"):
        with pytest.raises(DataError, match="synthetic:N"):
            parse_spec(bad)
