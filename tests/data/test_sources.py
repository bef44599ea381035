"""`KIND:PATH` parsing: every kind opens its reader; bad specs say what is wrong."""

import re

import pytest

from mobileseg.data.ade20k import ADE20KSource
from mobileseg.data.camvid import CamVidSource
from mobileseg.data.cityscapes import CityscapesSource
from mobileseg.data.folder import FolderSource
from mobileseg.data.problems import DataError
from mobileseg.data.sources import SOURCE_KINDS, open_source
from mobileseg.data.synthetic import SyntheticSource
from tests.data.fake_layouts import make_ade20k, make_camvid, make_cityscapes, make_folder


def test_every_kind_opens_its_reader(tmp_path):
    made = {
        "camvid": (make_camvid(tmp_path / "c"), CamVidSource),
        "cityscapes": (make_cityscapes(tmp_path / "cs", train_ids=False), CityscapesSource),
        "ade20k": (make_ade20k(tmp_path / "a"), ADE20KSource),
        "folder": (make_folder(tmp_path / "f", split=True), FolderSource),
    }
    for kind, (root, cls) in made.items():
        src = open_source(f"{kind}:{root}")
        assert isinstance(src, cls) and src.name == kind and src.pairs(src.splits()[0])
    src = open_source("synthetic:30,size=32x40,seed=7")
    assert isinstance(src, SyntheticSource) and (src.num_scenes, src.size, src.seed) == (30, (32, 40), 7)
    assert set(SOURCE_KINDS) == {*made, "synthetic"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo:bar", "unknown kind 'foo'; kinds are camvid, cityscapes, ade20k, folder, synthetic"),
        ("camvid", "expected KIND:PATH with KIND one of camvid, cityscapes"),
        ("camvid:", "expected KIND:PATH"),
        ("synthetic:many", "N must be a positive integer"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(DataError, match=re.escape(message)):
        open_source(spec)


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    for kind in ("camvid", "cityscapes", "ade20k", "folder"):
        with pytest.raises(DataError, match=re.escape(f"{missing}: {kind} data set directory not found")):
            open_source(f"{kind}:{missing}")
