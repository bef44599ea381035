"""The convolution ops' own facets: MBConv's derived widths, residual and structure; the zoomed kernel's stride."""

from mobileseg.arch.ops.convolutions import Conv, MBConv, ZoomedConv
from mobileseg.arch.ops.registry import op_spec


def test_mbconv_derives_its_hidden_and_se_widths_from_its_input_width():
    spec = op_spec("mbconv")
    assert spec.hidden_width(MBConv(width=16, expansion=3.0), 8) == 24
    assert spec.hidden_width(MBConv(width=16, expansion=3.0, expanded=40), 8) == 40
    assert spec.se_width(MBConv(width=16, expansion=4.0, se=True), 16) == 16  # 64 * 0.25, a multiple of 8
    assert spec.se_width(MBConv(width=16, expansion=4.0), 16) == 0


def test_mbconv_has_a_residual_only_at_stride_1_with_equal_widths():
    spec = op_spec("mbconv")
    assert spec.residual(MBConv(width=16), 16)
    assert not spec.residual(MBConv(width=16), 8)
    assert not spec.residual(MBConv(width=16, stride=2), 16)


def test_an_mbconv_without_expansion_conv_has_another_structure():
    spec = op_spec("mbconv")
    assert spec.structure(MBConv(width=16, expansion=1.0), 16) == (("has_expand", False),)
    assert spec.structure(MBConv(width=16, expansion=2.0), 16) == (("has_expand", True),)


def test_only_the_zoomed_conv_runs_its_kernel_off_the_cell_stride():
    assert not op_spec(ZoomedConv.OP).strided_kernel
    assert op_spec(Conv.OP).strided_kernel and op_spec(MBConv.OP).strided_kernel
    assert {op_spec(op).family for op in ("conv", "mbconv", "zoomed_conv", "patch_embed")} == {"conv"}
