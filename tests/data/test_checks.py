"""Checks on broken files: each problem reported with the file it concerns."""

import numpy as np
import pytest
from PIL import Image

from mobileseg.data.camvid import CamVidSource
from mobileseg.data.checks import check_pair, check_source, verified_pairs
from mobileseg.data.folder import FolderSource
from mobileseg.data.problems import DataError
from tests.data.fake_layouts import make_camvid, make_folder, write_image, write_mask


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def camvid(tmp_path):
    return CamVidSource(make_camvid(tmp_path / "camvid", counts={"train": 3, "val": 2, "test": 1}))


def problems_of(source, split, index):
    return [(p.path, p.problem) for p in check_pair(source, source.pairs(split)[index])]


def test_clean_data_set_has_no_problems(camvid):
    report = check_source(camvid)
    assert report.clean and report.pair_counts == {"train": 3, "val": 2, "test": 1}
    assert report.summary().startswith(f"{camvid.spec}: train 3 pairs, val 2 pairs, test 1 pairs; clean")


def test_truncated_image_and_mask(camvid):
    pair = camvid.pairs("train")[0]
    write_image(pair.image, seed=0, size=(64, 64))
    write_mask(pair.mask, values=range(11), size=(64, 64))
    truncate(pair.image)
    truncate(pair.mask)
    found = problems_of(camvid, "train", 0)
    assert [path for path, _ in found] == [pair.image, pair.mask]
    assert found[0][1].startswith("truncated or corrupt image (")
    assert found[1][1].startswith("truncated or corrupt mask (")


def test_unreadable_image(camvid):
    pair = camvid.pairs("train")[1]
    pair.image.write_bytes(b"this is not a png")
    assert problems_of(camvid, "train", 1) == [(pair.image, "unreadable image: not an image file PIL can identify")]


def test_missing_partners(camvid):
    mask_gone, image_gone = camvid.pairs("val")
    mask_gone.mask.unlink()
    image_gone.image.unlink()
    assert problems_of(camvid, "val", 0) == [(mask_gone.mask, f"missing mask (partner of image {mask_gone.image})")]
    assert problems_of(camvid, "val", 1) == [(image_gone.image, f"missing image (partner of mask {image_gone.mask})")]


def test_size_mismatch(camvid):
    pair = camvid.pairs("train")[2]
    write_mask(pair.mask, values=[1], size=(5, 8))
    assert problems_of(camvid, "train", 2) == [(pair.mask, f"mask is 5x8 (HxW) but its image {pair.image} is 6x8")]


def test_labels_outside_classes_and_void(camvid):
    pair = camvid.pairs("train")[0]
    write_mask(pair.mask, values=[0, 11, 12, 13, 14, 200])
    assert problems_of(camvid, "train", 0) == [
        (pair.mask, "label values 12..14, 200 outside classes 0..10 and void 11")
    ]


@pytest.mark.parametrize(
    "mode, message",
    [
        ("RGB", "mask has mode 'RGB' (3 channel(s)); expected one 8-bit channel of class ids ('L')"),
        ("P", "mask is a palette ('P') PNG"),
        ("JPEG", "mask is a JPEG file; masks must be lossless PNG"),
    ],
)
def test_mask_encodings_the_pipeline_would_misread(camvid, mode, message):
    pair = camvid.pairs("train")[0]
    raw = np.zeros((6, 8), np.uint8)
    if mode == "JPEG":
        Image.fromarray(raw).save(pair.mask, format="JPEG")
    else:
        Image.fromarray(raw).convert(mode).save(pair.mask)
    ((path, problem),) = problems_of(camvid, "train", 0)
    assert path == pair.mask and problem.startswith(message)


def test_empty_split_is_a_problem(tmp_path):
    root = make_folder(tmp_path, split=True)
    for f in (root / "images" / "val").iterdir():
        f.unlink()
    for f in (root / "masks" / "val").iterdir():
        f.unlink()
    source = FolderSource(root)
    report = check_source(source)
    assert [(p.split, p.path, p.problem) for p in report.problems] == [
        ("val", root / "images" / "val", "empty split 'val': no image/mask pairs")
    ]
    with pytest.raises(DataError, match="empty split 'val'"):
        verified_pairs(source, "val", skip_bad=True)


def test_report_lists_every_problem_with_split(camvid):
    camvid.pairs("train")[0].mask.unlink()
    write_mask(camvid.pairs("test")[0].mask, values=[99])
    report = check_source(camvid)
    assert not report.clean and report.bad_files == 2
    assert [(p.split, p.path.name) for p in report.problems] == [
        ("train", "0001TP_000000.png"),
        ("test", "0001TP_000000.png"),
    ]
    assert "2 problem(s) in 2 file(s)" in report.summary()


def test_unknown_split_and_bad_listing_are_reported(camvid):
    (camvid.root / "val.txt").write_text("only-one-field\n")
    report = check_source(camvid, splits=["val", "extra"])
    assert [p.problem for p in report.problems] == [
        "line 1 has 1 fields; expected 'IMAGE MASK'",
        "no split 'extra' (this data set has: train, val, test)",
    ]


def test_verified_pairs_stops_at_first_bad_file_or_skips_it(camvid):
    pairs = camvid.pairs("train")
    truncate(pairs[1].image, keep=0.3)
    write_mask(pairs[2].mask, values=[42])
    with pytest.raises(DataError) as err:
        verified_pairs(camvid, "train")
    assert err.value.problem.path == pairs[1].image and str(err.value).startswith(str(pairs[1].image))
    good, skipped = verified_pairs(camvid, "train", skip_bad=True)
    assert good == [pairs[0]]
    assert [(p.path, p.split) for p in skipped] == [(pairs[1].image, "train"), (pairs[2].mask, "train")]


def test_verified_pairs_fails_when_every_pair_is_bad(camvid):
    camvid.pairs("test")[0].mask.unlink()
    with pytest.raises(DataError, match="every pair of split 'test' is bad"):
        verified_pairs(camvid, "test", skip_bad=True)
