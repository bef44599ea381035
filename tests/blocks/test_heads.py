import keras
import numpy as np
import pytest

from mobileseg.blocks.heads import LightHead, LRASPPHead, MLPDecoder
from tests.layer_checks import check_layer

THREE_SCALES = [(1, 16, 16, 8), (1, 8, 8, 12), (1, 4, 4, 16)]


def trainable_count(layer) -> int:
    return sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)


def assert_integer_only(report) -> None:
    """No float island in the int8 graph (a DEQUANTIZE ... QUANTIZE pair around a float op)."""
    assert "DEQUANTIZE" not in report["int8_ops"], report["int8_ops"]


def features(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for shape in shapes]


@pytest.mark.parametrize("make_layer, shapes", [
    (lambda: LightHead(5, width=16), [(1, 16, 16, 16)]),
    (lambda: LightHead(5, width=16, depthwise=False), THREE_SCALES),
    (lambda: MLPDecoder(5, width=16), [(1, 16, 16, 8)]),
    (lambda: MLPDecoder(5, width=16), THREE_SCALES),
    (lambda: LRASPPHead(5, width=16), [(1, 16, 16, 8), (1, 8, 8, 16)]),
], ids=["light_1", "light_3", "mlp_1", "mlp_3", "lraspp"])
def test_heads_pass_layer_checks(make_layer, shapes, tmp_path):
    report = check_layer(make_layer, shapes, tmp_path)
    coarser = sum(shape[1:3] != shapes[0][1:3] for shape in shapes[1:])
    assert report["fp32_ops"].count("RESIZE_BILINEAR") == coarser, report["fp32_ops"]
    assert_integer_only(report)


def test_seaformer_tiny_head_parameter_count():
    # SeaFormer-T LightHead after its fusion blocks: channels 96, is_dw=True, 150 classes.
    head = LightHead(150, width=96)
    head.build((1, 16, 16, 96))
    linear_fuse = 96 + 2 * 96         # depthwise 1x1, no bias, BN
    conv_seg = 96 * 150 + 150
    assert trainable_count(head) == linear_fuse + conv_seg == 14838
    full = LightHead(150, width=96, depthwise=False)
    full.build((1, 16, 16, 96))
    assert trainable_count(full) == 96 * 96 + 2 * 96 + conv_seg


def test_segformer_b0_decoder_parameter_count():
    decoder = MLPDecoder(150, width=256)
    decoder.build([(1, 8, 8, 32), (1, 4, 4, 64), (1, 2, 2, 160), (1, 1, 1, 256)])
    linears = (32 + 64 + 160 + 256) * 256 + 4 * 256
    linear_fuse = 4 * 256 * 256 + 2 * 256
    linear_pred = 256 * 150 + 150
    assert trainable_count(decoder) == linears + linear_fuse + linear_pred == 433302


def test_lraspp_mobilenetv3_large_parameter_count():
    # torchvision lraspp_mobilenet_v3_large: low 40 channels, high 960, inter 128, 21 classes.
    head = LRASPPHead(21, width=128)
    head.build([(1, 16, 16, 40), (1, 8, 8, 960)])
    cbr = 960 * 128 + 2 * 128
    scale = 960 * 128
    classifiers = (40 * 21 + 21) + (128 * 21 + 21)
    assert trainable_count(head) == cbr + scale + classifiers == 249586


def test_mlp_decoder_concatenates_coarsest_first():
    fine, coarse = features((1, 8, 8, 4), (1, 4, 4, 6))
    decoder = MLPDecoder(3, width=5)
    out = decoder([fine, coarse], training=False)
    embedded_coarse = keras.ops.image.resize(decoder.linears[1](coarse), (8, 8))
    fused = decoder.linear_fuse(keras.ops.concatenate([embedded_coarse, decoder.linears[0](fine)], axis=-1),
                                training=False)
    np.testing.assert_allclose(out, decoder.classifier(fused), atol=1e-5)


def test_lraspp_follows_torchvision():
    low, high = features((1, 8, 8, 4), (1, 4, 4, 6))
    head = LRASPPHead(3, width=5)
    out = head([low, high], training=False)
    scale = keras.ops.sigmoid(head.scale(keras.ops.mean(high, axis=(1, 2), keepdims=True)))
    x = keras.ops.image.resize(head.cbr(high, training=False) * scale, (8, 8))
    np.testing.assert_allclose(out, head.low_classifier(low) + head.high_classifier(x), atol=1e-5)


def test_light_head_sums_projected_branches():
    fine, coarse = features((1, 8, 8, 4), (1, 4, 4, 6))
    head = LightHead(3, width=5, dropout=0.0)
    out = head([fine, coarse], training=False)
    summed = head.projections[0](fine, training=False) + keras.ops.image.resize(
        head.projections[1](coarse, training=False), (8, 8))
    np.testing.assert_allclose(out, head.classifier(head.linear_fuse(summed, training=False)), atol=1e-5)


def test_heads_train_with_an_unknown_batch():
    inputs = [keras.Input(shape[1:]) for shape in THREE_SCALES]
    logits = keras.layers.Add()([LightHead(4, width=8)(inputs), MLPDecoder(4, width=8)(inputs),
                                 LRASPPHead(4, width=8)(inputs[:2])])
    model = keras.Model(inputs, logits)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = features(*[(4, *shape[1:]) for shape in THREE_SCALES])
    labels = np.random.default_rng(1).integers(0, 4, size=(4, 16, 16))
    history = model.fit(data, labels, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_head_errors_are_named():
    x, = features((1, 8, 8, 4))
    with pytest.raises(ValueError, match="LRASPPHead takes a list of 2 NHWC inputs, got 1"):
        LRASPPHead(3)(x)
    with pytest.raises(ValueError, match="a single input must have width=16 channels, got 4"):
        LightHead(3, width=16)(x)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        MLPDecoder(3, width=8, dropout=1.0)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        LightHead(0, width=8)
