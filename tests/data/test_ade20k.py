"""ADE20K reader: ADEChallengeData2016 layout, raw 0 ignored, raw k -> class k-1."""

import numpy as np
import pytest

from mobileseg.data.ade20k import CLASS_NAMES, COLORS, ADE20KSource
from mobileseg.data.problems import DataError
from tests.data.fake_layouts import make_ade20k


def test_150_classes_with_colours():
    assert len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 150
    assert len(COLORS) == 150 and CLASS_NAMES[:3] == ("wall", "building", "sky") and CLASS_NAMES[-1] == "flag"


def test_reads_layout_from_parent_or_the_folder_itself(tmp_path):
    make_ade20k(tmp_path)
    for root in (tmp_path, tmp_path / "ADEChallengeData2016"):
        src = ADE20KSource(root)
        assert src.splits() == ("train", "val")
        assert [p.image.name for p in src.pairs("train")] == ["ADE_train_00000001.jpg", "ADE_train_00000002.jpg"]
        assert src.pairs("val")[0].mask.parent.name == "validation"


def test_labels_shift_down_by_one_and_zero_is_ignored(tmp_path):
    src = ADE20KSource(make_ade20k(tmp_path))
    image, mask = src.load_pair(src.pairs("val")[0])
    assert image.shape == (6, 8, 3)
    assert mask.ravel()[:4].tolist() == [255, 0, 1, 149]  # raw 0, 1, 2, 150
    assert not src.valid_raw_labels[151]


def test_missing_annotations_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="annotations: ade20k folder not found"):
        ADE20KSource(tmp_path)


def test_no_test_split(tmp_path):
    src = ADE20KSource(make_ade20k(tmp_path))
    with pytest.raises(DataError, match="no split 'test'"):
        src.pairs("test")
    assert np.array_equal(src.colors[0], [120, 120, 120])
