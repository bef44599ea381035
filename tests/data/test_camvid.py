"""CamVid reader: the SegNet layout written small, and the real data set beside the repo."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobileseg.data.camvid import CamVidSource
from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.problems import DataError
from tests.data.fake_layouts import make_camvid, write_image

REAL_CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "camvid"


def test_reads_listed_pairs_relative_to_the_folder(tmp_path):
    src = CamVidSource(make_camvid(tmp_path))
    assert src.splits() == ("train", "val", "test")
    assert [len(src.pairs(s)) for s in src.splits()] == [3, 2, 1]
    pair = src.pairs("val")[1]
    assert pair.image == tmp_path / "val" / "0001TP_000001.png"
    assert pair.mask == tmp_path / "valannot" / "0001TP_000001.png"
    assert (src.num_classes, src.class_names[3], src.ignore_index, src.colors.shape) == (11, "Road", 255, (11, 3))


def test_load_pair_maps_void_11_to_ignore(tmp_path):
    src = CamVidSource(make_camvid(tmp_path))
    image, mask = src.load_pair(src.pairs("train")[0])
    raw = np.asarray(Image.open(src.pairs("train")[0].mask))
    assert np.array_equal(image, np.asarray(Image.open(src.pairs("train")[0].image)))
    assert np.array_equal(mask[raw < 11], raw[raw < 11])
    assert set(mask[raw == 11].tolist()) == {IGNORE_INDEX}


def test_without_lists_pairs_folders_by_name_and_keeps_orphans(tmp_path):
    make_camvid(tmp_path)
    for txt in tmp_path.glob("*.txt"):
        txt.unlink()
    write_image(tmp_path / "train" / "orphan.png", seed=9)
    pairs = CamVidSource(tmp_path).pairs("train")
    assert len(pairs) == 4
    orphan = [p for p in pairs if p.image.name == "orphan.png"][0]
    assert orphan.mask == tmp_path / "trainannot" / "orphan.png" and not orphan.mask.exists()


def test_malformed_list_line_names_file_and_line(tmp_path):
    make_camvid(tmp_path)
    (tmp_path / "val.txt").write_text("/SegNet/CamVid/val/a.png\n")
    with pytest.raises(DataError, match=r"val\.txt: line 1 has 1 fields"):
        CamVidSource(tmp_path).pairs("val")


def test_a_list_that_is_not_utf8_names_file_and_line(tmp_path):
    make_camvid(tmp_path)
    listing = (tmp_path / "train.txt").read_bytes()
    (tmp_path / "train.txt").write_bytes(listing.replace(b"0001TP_000001.png", b"0001TP_\xe90001.png", 1))
    with pytest.raises(DataError) as error:
        CamVidSource(tmp_path).pairs("train")
    assert str(error.value) == f"{tmp_path / 'train.txt'}: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    assert error.value.problem.path == tmp_path / "train.txt"


def test_missing_or_wrong_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope'}: camvid data set directory not found")):
        CamVidSource(tmp_path / "nope")
    with pytest.raises(DataError, match="not a CamVid folder"):
        CamVidSource(tmp_path)


def test_unknown_split_lists_the_existing_ones(tmp_path):
    src = CamVidSource(make_camvid(tmp_path, counts={"train": 1}))
    with pytest.raises(DataError, match=r"no split 'val' \(this data set has: train\)"):
        src.pairs("val")


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason=f"real CamVid not found at {REAL_CAMVID}")
def test_real_camvid_counts_and_label_range():
    src = CamVidSource(REAL_CAMVID)
    assert {s: len(src.pairs(s)) for s in src.splits()} == {"train": 367, "val": 101, "test": 233}
    seen = np.zeros(256, bool)
    for split in src.splits():
        for pair in src.pairs(split):
            seen[np.unique(np.asarray(Image.open(pair.mask)))] = True
    raw_values = set(np.flatnonzero(seen).tolist())
    assert raw_values <= set(range(12)) and {0, 3, 8, 11} <= raw_values
    internal = set(src.label_table[sorted(raw_values)].tolist())
    assert internal <= set(range(11)) | {IGNORE_INDEX}
    image, mask = src.load_pair(src.pairs("test")[0])
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480)
