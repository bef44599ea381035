"""SegFormer's overlapping patch embedding converts to integer-only int8."""

from mobileseg.blocks.patch_embed import OverlapPatchEmbed
from tests.blocks.test_conv import assert_integer_only
from tests.layer_checks import check_layer


def test_overlap_patch_embed_is_integer_only(tmp_path):
    report = check_layer(lambda: OverlapPatchEmbed(16, kernel_size=7, strides=4), [(1, 32, 32, 3)], tmp_path)
    assert_integer_only(report)
