"""A training config refuses values out of range, naming the field."""

import pytest

from mobileseg.training.train_config import TrainConfig


def test_config_values_are_checked():
    assert TrainConfig(input_size=(64, 64)).min_kept() == 64 * 64 // 4
    for bad, match in [(dict(lr=0.0), "lr must be positive"), (dict(min_lr=1.0), "min_lr"),
                       (dict(ohem_thresh=0.0), "ohem_thresh"), (dict(scale_range=(2.0, 1.0)), "scale_range"),
                       (dict(loss_stride=0), "loss_stride"), (dict(val_every=0), "val_every"),
                       (dict(cache_images="maybe"), "cache_images"), (dict(precision="float16"), "precision"),
                       (dict(class_weight="median"), "class_weight must be one of none, enet"),
                       (dict(train_split=()), "train_split must name each split once"),
                       (dict(train_split=("train", "train")), "train_split must name each split once")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(input_size=(8, 8), **bad)
