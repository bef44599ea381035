import keras
import numpy as np
import pytest

from mobileseg.blocks.fusion import SigmoidGateFusion, SumFusion
from tests.layer_checks import check_layer


def trainable_count(layer) -> int:
    return sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)


def assert_integer_only(report) -> None:
    """No float island in the int8 graph (a DEQUANTIZE ... QUANTIZE pair around a float op)."""
    assert "DEQUANTIZE" not in report["int8_ops"], report["int8_ops"]


def features(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for shape in shapes]


@pytest.mark.parametrize("make_layer, shapes", [
    (lambda: SumFusion(8), [(1, 16, 16, 8), (1, 4, 4, 12)]),
    (lambda: SigmoidGateFusion(8), [(1, 16, 16, 4), (1, 8, 8, 12)]),
    (lambda: SigmoidGateFusion(8, gate="sigmoid"), [(1, 8, 8, 4), (1, 8, 8, 12)]),
], ids=["sum", "hard_sigmoid_gate", "sigmoid_gate_same_size"])
def test_fusions_pass_layer_checks(make_layer, shapes, tmp_path):
    report = check_layer(make_layer, shapes, tmp_path)
    resizes = report["fp32_ops"].count("RESIZE_BILINEAR")
    assert resizes == (0 if shapes[0][1:3] == shapes[1][1:3] else 1), report["fp32_ops"]
    assert_integer_only(report)


def test_sum_fusion_adds_the_resized_context():
    x, context = features((1, 8, 8, 4), (1, 4, 4, 6))
    layer = SumFusion(5)
    out = layer([x, context], training=False)
    projected = layer.project_context(context, training=False)
    expected = layer.project_x(x, training=False) + keras.ops.image.resize(projected, (8, 8))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_sigmoid_gate_fusion_follows_seaformer():
    x, context = features((1, 8, 8, 4), (1, 2, 2, 6))
    layer = SigmoidGateFusion(5)
    out = layer([x, context], training=False)
    gate = keras.ops.relu6(layer.global_act(context, training=False) + 3.0) / 6.0   # h_sigmoid, then resize
    expected = layer.local_embedding(x, training=False) * keras.ops.image.resize(gate, (8, 8))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_seaformer_tiny_fusion_parameter_counts():
    # SeaFormer-T head: in_channels [32, 128, 160], embed_dims [64, 96]; 1x1 convs without bias + BN.
    fuse1, fuse2 = SigmoidGateFusion(64), SigmoidGateFusion(96)
    fuse1.build([(1, 16, 16, 32), (1, 4, 4, 128)])
    fuse2.build([(1, 16, 16, 64), (1, 2, 2, 160)])
    assert trainable_count(fuse1) == (32 * 64 + 2 * 64) + (128 * 64 + 2 * 64) == 10496
    assert trainable_count(fuse2) == (64 * 96 + 2 * 96) + (160 * 96 + 2 * 96) == 21888
    fusion = SumFusion(64)
    fusion.build([(1, 16, 16, 32), (1, 4, 4, 128)])
    assert trainable_count(fusion) == 10496


def test_fusion_trains_with_an_unknown_batch():
    x, context = keras.Input((16, 16, 4)), keras.Input((4, 4, 8))
    fused = SigmoidGateFusion(8)([SumFusion(4)([x, context]), context])
    model = keras.Model([x, context], fused)
    model.compile(optimizer="sgd", loss="mse")
    data = features((4, 16, 16, 4), (4, 4, 4, 8), (4, 16, 16, 8))
    history = model.fit(data[:2], data[2], batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("layer_class", [SumFusion, SigmoidGateFusion])
def test_fusion_needs_two_inputs(layer_class):
    x, = features((1, 8, 8, 4))
    with pytest.raises(ValueError, match=f"{layer_class.__name__} takes a list of 2 NHWC inputs, got 1"):
        layer_class(4)(x)
    with pytest.raises(ValueError, match="got 3"):
        layer_class(4)([x, x, x])


def test_fusion_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown gate 'relu'"):
        SigmoidGateFusion(8, gate="relu")
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        SumFusion(0)
    with pytest.raises(ValueError, match="4-D NHWC"):
        SumFusion(4)([np.zeros((1, 8, 4), "float32"), np.zeros((1, 8, 4), "float32")])
