"""Conv-BN-activation, squeeze-excite and inverted residual blocks, and the conventions every block shares."""

import keras
import numpy as np
import pytest

from mobileseg.blocks.conv import ConvBNAct, MBConv, SqueezeExcite, make_divisible
from mobileseg.blocks.patch_embed import OverlapPatchEmbed
from mobileseg.blocks.zoomed_conv import ZoomedConv
from tests.layer_checks import check_layer


def trainable_count(layer) -> int:
    return sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)


def frozen_count(layer) -> int:
    return sum(int(np.prod(weight.shape)) for weight in layer.non_trainable_weights)


def assert_integer_only(report) -> None:
    """No float island in the int8 graph (a DEQUANTIZE ... QUANTIZE pair around a float op)."""
    assert "DEQUANTIZE" not in report["int8_ops"], report["int8_ops"]


def built(layer, shape):
    layer(np.zeros(shape, "float32"))
    return layer


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: ConvBNAct(12, 3, activation="relu6"), (1, 16, 16, 8)),
    (lambda: ConvBNAct(8, 3, strides=2, depthwise=True, activation="hard_swish"), (1, 16, 16, 8)),
    (lambda: ConvBNAct(8, 3, use_bn=False, dilation_rate=2, activation="none"), (1, 16, 16, 8)),
    (lambda: SqueezeExcite(8), (1, 8, 8, 16)),
], ids=["conv", "depthwise_stride2", "no_bn_dilated", "squeeze_excite"])
def test_conv_units_pass_layer_checks(make_layer, shape, tmp_path):
    assert_integer_only(check_layer(make_layer, [shape], tmp_path))


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: MBConv(8, kernel_size=3, expansion=4.0), (1, 16, 16, 8)),
    (lambda: MBConv(16, kernel_size=5, strides=2, expansion=3.0, se_ratio=0.25, activation="hard_swish"),
     (1, 16, 16, 8)),
    (lambda: MBConv(8, kernel_size=7, expansion=1.0, se_ratio=0.25), (1, 16, 16, 8)),
    (lambda: MBConv(12, kernel_size=3, expanded_filters=20, activation="relu6"), (1, 16, 16, 8)),
], ids=["residual_k3", "se_k5_stride2", "expansion1_se_k7", "explicit_expanded"])
def test_mbconv_passes_layer_checks(make_layer, shape, tmp_path):
    assert_integer_only(check_layer(make_layer, [shape], tmp_path))


def test_mbconv_16_to_24_parameter_count():
    block = built(MBConv(24, kernel_size=3, expansion=4.0), (1, 8, 8, 16))
    assert block.hidden_filters == 64 and not block.use_residual
    expand = 16 * 64 + 2 * 64     # 1x1 conv, no bias, BN gamma + beta
    depthwise = 3 * 3 * 64 + 2 * 64
    project = 64 * 24 + 2 * 24
    assert trainable_count(block) == expand + depthwise + project == 3440
    assert frozen_count(block) == 2 * (64 + 64 + 24)   # BN moving mean + variance


def test_mobilenetv3_bneck_with_se_parameter_count():
    # MobileNetV3-Large bneck "5x5, exp 72, out 40, SE, RE, s2" on 24 channels.
    block = built(MBConv(40, kernel_size=5, strides=2, se_ratio=0.25, expanded_filters=72), (1, 8, 8, 24))
    squeeze = make_divisible(72 / 4)
    assert squeeze == 24 == block.se.reduced_filters   # 16 would be > 10 % below 18, so 24
    expand = 24 * 72 + 2 * 72
    depthwise = 5 * 5 * 72 + 2 * 72
    se = (72 * 24 + 24) + (24 * 72 + 72)
    project = 72 * 40 + 2 * 40
    assert trainable_count(block) == expand + depthwise + se + project == 10328


def test_seaformer_expansion_one_layer_has_no_expand_conv():
    # SeaFormer-S stage 1, layer 1: [k=3, t=1, c=16, s=1] on 16 channels.
    block = built(MBConv(16, kernel_size=3, expansion=1.0), (1, 8, 8, 16))
    assert block.expand is None and block.use_residual
    assert trainable_count(block) == (9 * 16 + 2 * 16) + (16 * 16 + 2 * 16) == 464


def test_seaformer_hidden_width_is_rounded_not_made_divisible():
    block = built(MBConv(24, expansion=3.0), (1, 8, 8, 18))
    assert block.hidden_filters == 54   # int(round(18 * 3)); make_divisible would give 56


def test_unit_parameter_counts():
    assert trainable_count(built(ConvBNAct(8, 3, depthwise=True), (1, 8, 8, 8))) == 9 * 8 + 2 * 8
    assert trainable_count(built(ConvBNAct(12, 3, use_bn=False), (1, 8, 8, 8))) == 8 * 9 * 12 + 12
    assert trainable_count(built(SqueezeExcite(16), (1, 4, 4, 64))) == (64 * 16 + 16) + (16 * 64 + 64)
    assert trainable_count(built(ZoomedConv(16), (1, 8, 8, 8))) == 8 * 9 * 16 + 2 * 16
    # SegFormer-B0 patch_embed1: 7x7 conv 3 -> 32 with bias, LayerNorm(32).
    assert trainable_count(built(OverlapPatchEmbed(32), (1, 16, 16, 3))) == 3 * 49 * 32 + 32 + 2 * 32 == 4800


def test_residual_is_an_identity_shortcut():
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 8)).astype(np.float32)
    block = built(MBConv(8, expansion=2.0), x.shape)
    assert block.use_residual
    *zeroed, variance = block.project.get_weights()   # kernel, BN gamma, beta, moving mean; moving variance
    block.project.set_weights([np.zeros_like(w) for w in zeroed] + [np.ones_like(variance)])
    np.testing.assert_allclose(block(x, training=False), x, atol=1e-6)
    assert not built(MBConv(8, strides=2), x.shape).use_residual
    assert not built(MBConv(16), x.shape).use_residual


def test_blocks_train_with_an_unknown_batch():
    inputs = keras.Input((16, 16, 8))
    x = MBConv(8, se_ratio=0.25)(inputs)
    x = ZoomedConv(8)(x)
    x = MBConv(16, kernel_size=5, strides=2)(x)
    model = keras.Model(inputs, OverlapPatchEmbed(8, kernel_size=3, strides=2)(x))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(4, 16, 16, 8)), rng.normal(size=(4, 4, 4, 8)), batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_batch_norm_follows_the_pytorch_references():
    bn = ConvBNAct(8, 1).bn
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9


def test_make_divisible():
    assert [make_divisible(v) for v in (3, 16, 18, 20, 36, 72 * 0.25, 240 / 4)] == [8, 16, 24, 24, 40, 24, 64]
    assert make_divisible(10, 4) == 12 and make_divisible(2, 8, min_value=4) == 4


@pytest.mark.parametrize("make_layer, message", [
    (lambda: ConvBNAct(8, activation="swishy"), "unknown activation 'swishy'"),
    (lambda: ConvBNAct(0), "filters must be a positive integer"),
    (lambda: ConvBNAct(8, strides=2, dilation_rate=2), "cannot both exceed 1"),
    (lambda: MBConv(8, kernel_size=4), "kernel_size must be odd"),
    (lambda: MBConv(8, strides=3), "strides must be 1 or 2"),
    (lambda: MBConv(8, expansion=0), "expansion must be positive"),
    (lambda: MBConv(8, se_ratio=1.5), r"se_ratio must be in \[0, 1\]"),
    (lambda: MBConv(8, activation="mish"), "unknown activation 'mish'"),
    (lambda: SqueezeExcite(4, gate="tanh"), "unknown gate 'tanh'"),
    (lambda: ZoomedConv(8, strides=4), "strides must be 1 or 2"),
    (lambda: OverlapPatchEmbed(8, kernel_size=4), "kernel_size must be odd"),
])
def test_bad_arguments_are_named(make_layer, message):
    with pytest.raises(ValueError, match=message):
        make_layer()


def test_depthwise_needs_equal_channels():
    with pytest.raises(ValueError, match="filters=16 and the input has 8 channels"):
        ConvBNAct(16, depthwise=True)(np.zeros((1, 8, 8, 8), "float32"))
