"""benchmarks/tome_speed.py: which (method, ratio) variants a run measures."""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from tome_speed import variants_of  # noqa: E402

from mobileseg.arch.tome import TomeError  # noqa: E402


def test_no_merging_first_then_each_methods_ratios_above_zero():
    assert variants_of(["bsm", "grid"], {"bsm": "0, 0.5,0.9", "grid": "0.75,0.9375"}) == [
        ("none", 0.0), ("bsm", 0.5), ("bsm", 0.9), ("grid", 0.75), ("grid", 0.9375)]


@pytest.mark.parametrize("method, ratios, message", [("grid", "0.5", "1 - 1/s**2"), ("bsm", "1.0", "[0, 1)")])
def test_a_ratio_the_method_cannot_merge_at_is_refused(method, ratios, message):
    with pytest.raises(TomeError, match=re.escape(message)):
        variants_of([method], {method: ratios})
