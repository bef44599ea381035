"""Cityscapes reader: labelTrainIds masks when present, else labelIds through the official table."""

import numpy as np
import pytest

from mobileseg.data.cityscapes import LABEL_ID_TO_TRAIN_ID, CityscapesSource
from mobileseg.data.labels import label_table
from mobileseg.data.problems import DataError
from tests.data.fake_layouts import make_cityscapes


def test_official_table_has_34_ids_and_19_train_ids():
    assert sorted(LABEL_ID_TO_TRAIN_ID) == list(range(34))
    assert sorted(set(LABEL_ID_TO_TRAIN_ID.values()) - {255}) == list(range(19))
    assert [LABEL_ID_TO_TRAIN_ID[i] for i in (0, 7, 8, 11, 23, 24, 26, 33)] == [255, 0, 1, 2, 10, 11, 13, 18]


def test_label_ids_are_mapped_when_train_ids_are_absent(tmp_path):
    src = CityscapesSource(make_cityscapes(tmp_path, train_ids=False))
    assert not src.uses_train_ids and src.splits() == ("train", "val")
    pair = src.pairs("val")[0]
    assert pair.image.name == "lindau_000000_000019_leftImg8bit.png"
    assert pair.mask.name == "lindau_000000_000019_gtFine_labelIds.png"
    _, mask = src.load_pair(pair)
    # raw labelIds cycle 0, 7, 8, 26, 33 -> ignore, road 0, sidewalk 1, car 13, bicycle 18
    assert mask.ravel()[:5].tolist() == [255, 0, 1, 13, 18]
    assert src.valid_raw_labels[33] and not src.valid_raw_labels[34]


def test_train_ids_are_read_when_present(tmp_path):
    src = CityscapesSource(make_cityscapes(tmp_path, train_ids=True))
    assert src.uses_train_ids
    pairs = src.pairs("train")
    assert [p.mask.name for p in pairs] == [
        "aachen_000000_000019_gtFine_labelTrainIds.png",
        "aachen_000001_000019_gtFine_labelTrainIds.png",
    ]
    _, mask = src.load_pair(pairs[1])
    assert mask.ravel()[:5].tolist() == [255, 0, 1, 13, 18]
    assert src.num_classes == 19 and src.class_names[18] == "bicycle"
    assert src.colors[13].tolist() == [0, 0, 142]


def test_image_without_mask_is_listed_with_its_expected_mask(tmp_path):
    make_cityscapes(tmp_path, train_ids=False)
    next((tmp_path / "gtFine" / "train").rglob("*_labelIds.png")).unlink()
    pairs = CityscapesSource(tmp_path).pairs("train")
    assert len(pairs) == 2 and sum(not p.mask.exists() for p in pairs) == 1


def test_missing_gtfine_is_named(tmp_path):
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(DataError, match="gtFine: cityscapes folder not found"):
        CityscapesSource(tmp_path)


def test_table_lookup_is_exact():
    src_table = np.full(256, 255, np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        src_table[label_id] = train_id
    table, _ = label_table(LABEL_ID_TO_TRAIN_ID)
    assert np.array_equal(table, src_table)
