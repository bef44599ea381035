"""Folder reader: images/ + masks/ + classes.yaml, split into subfolders or one set split by stem."""

import pytest

from mobileseg.data.folder import FolderSource, read_classes, validation_stems
from mobileseg.data.problems import DataError
from tests.data.fake_layouts import make_folder


def test_split_layout(tmp_path):
    src = FolderSource(make_folder(tmp_path, split=True))
    assert src.is_split and src.splits() == ("train", "val")
    assert [p.image.name for p in src.pairs("val")] == ["plant0.jpg", "plant1.jpg", "plant2.jpg"]
    assert src.pairs("train")[0].mask == tmp_path / "masks" / "train" / "plant0.png"
    assert (src.class_names, src.colors[1].tolist()) == (("background", "leaf", "stem"), [0, 200, 0])


def test_raw_ignore_value_maps_to_255(tmp_path):
    src = FolderSource(make_folder(tmp_path, split=True))
    _, mask = src.load_pair(src.pairs("train")[0])
    assert mask.ravel()[:4].tolist() == [0, 1, 2, 255]  # raw 0, 1, 2, 9
    assert src.raw_labels == "classes 0..2 and ignore 9"


def test_unsplit_set_is_divided_by_stem(tmp_path):
    src = FolderSource(make_folder(tmp_path, split=False, count=12))
    assert not src.is_split and src.splits() == ("train", "val")
    val = [p.image.stem for p in src.pairs("val")]
    train = [p.image.stem for p in src.pairs("train")]
    assert sorted(val + train) == sorted(f"plant{i}" for i in range(12)) and not set(val) & set(train)
    assert set(val) == validation_stems([f"plant{i}" for i in range(12)]) and len(val) >= 1


def test_two_images_with_one_stem_are_reported(tmp_path):
    make_folder(tmp_path, split=True)
    (tmp_path / "images" / "train" / "plant0.png").write_bytes(b"")
    with pytest.raises(DataError, match="two images with stem 'plant0'"):
        FolderSource(tmp_path).pairs("train")


@pytest.mark.parametrize(
    "text, message",
    [
        ("names: [a, b]\nignore: 255\n", "unknown key 'ignore'"),
        ("colors: [[0, 0, 0]]\n", "missing key 'names'"),
        ("names: [a, b]\ncolors: [[0, 0, 0]]\n", "'colors' must list 2 RGB triples"),
        ("names: [a, b]\nignore_index: 1\n", r"'ignore_index' must be an integer in 2..255"),
        ("names: [a, a]\n", "'names' has duplicates"),
        ("names: [a\n", "not valid YAML"),
        ("names: [a, b]\n1: x\nzz: y\n", "unknown key 1, 'zz'"),
        ("names: [f\xeate]\n", r"not UTF-8 text \(byte 0xea on line 1\); save it as UTF-8"),
        ("names: [" + "a, " * 300 + "b]\n", "'names' has 301 classes"),
    ],
)
def test_bad_classes_yaml_names_file_and_key(tmp_path, text, message):
    (tmp_path / "classes.yaml").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=message) as err:
        read_classes(tmp_path / "classes.yaml")
    assert str(err.value).startswith(str(tmp_path / "classes.yaml"))


def test_missing_classes_yaml_and_masks_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="classes.yaml: classes file not found"):
        FolderSource(tmp_path)
    (tmp_path / "classes.yaml").write_text("names: [a]\n")
    with pytest.raises(DataError, match="masks: folder not found"):
        FolderSource(tmp_path)
