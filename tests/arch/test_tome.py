"""Token merging without retraining (Segformer++): the rewrite keeps the weights, is exact at ratio 0,
close on a smooth image above it, placed per block as Segformer++'s presets, and converts to builtin int8."""

import keras
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.arch.tome import TomeError, block_settings, check_ratio, check_same_weights, with_token_merging
from mobileseg.deploy import packaging, report, tflite_convert
from mobileseg.quant.ptq import representative_dataset
from tests.quant.networks import images, randomize_statistics

TINY_SEGFORMER = """
name: tiny_segformer
branches:
  - name: main
    source: null
    cells:
      - {op: patch_embed, width: 16, kernel: 7, stride: 4}
      - {op: efficient_attention, heads: 1, sr_ratio: 4, mlp_ratio: 2.0}
      - {op: patch_embed, width: 32, kernel: 3, stride: 2}
      - {op: efficient_attention, heads: 2, sr_ratio: 1, mlp_ratio: 2.0}
head: {op: mlp, inputs: [{branch: main, cell: 1}, {branch: main, cell: 3}], width: 16}
"""
"""Two SegFormer stages: keys/values merged in the first (sr 4), queries in the second (sr 1)."""


def tiny_segformer(num_classes: int = 5, input_size=(64, 64), seed: int = 0) -> keras.Model:
    """`TINY_SEGFORMER` with SegFormer's own initialization and random norm scales and biases."""
    keras.utils.set_random_seed(seed)
    model = builder.build_model(schema_io.loads(TINY_SEGFORMER), num_classes, input_size)
    randomize_statistics(model, seed)
    return model


def smooth_image(size=(64, 64)) -> np.ndarray:
    """Two colour ramps and a slow wave: neighbouring pixels (and tokens) are nearly alike."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    wave = 127.5 + 100.0 * np.sin(xx / 10.0) * np.cos(yy / 13.0)
    return np.stack([255.0 * xx / (size[1] - 1), 255.0 * yy / (size[0] - 1), wave], -1)[None]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """L2 error over the L2 spread of ``want`` around its per-channel spatial mean."""
    return float(np.linalg.norm(got - want) / np.linalg.norm(want - want.mean(axis=(1, 2), keepdims=True)))


@pytest.fixture(scope="module")
def model():
    return tiny_segformer()


def test_ratio_zero_is_the_original_network(model):
    plain = with_token_merging(model, 0.0)
    x = np.concatenate([smooth_image(), images(1, (64, 64), seed=4)])
    np.testing.assert_array_equal(plain.predict_on_batch(x), model.predict_on_batch(x))
    assert all(s["tome_mode"] == "none" and s["tome_ratio"] == 0.0 for s in block_settings(plain).values())
    # and ratio 0 switches merging off in a network built with it
    merged = with_token_merging(model, 0.5)
    np.testing.assert_array_equal(with_token_merging(merged, 0).predict_on_batch(x), model.predict_on_batch(x))


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_merging_changes_the_outputs_but_keeps_them_close_on_a_smooth_image(model, ratio):
    merged = with_token_merging(model, ratio)
    assert all(np.array_equal(a, b) for a, b in zip(merged.get_weights(), model.get_weights(), strict=True))
    x = smooth_image()
    want, got = model.predict_on_batch(x), merged.predict_on_batch(x)
    # the ratio-0 copy is bit-identical, so any difference is the merging: far above float rounding
    assert np.abs(got - want).max() > 1e-4
    # Merging approximates each attention output; the approximation must keep most of what attention
    # contributes. The scale: the logits' change when the attention output is removed altogether
    # (output projections zeroed). Measured here: merging changes the logits by 1-3 % of that
    # (relative errors 0.0016 at 0.5, 0.0034 at 0.9 against 0.18); 10 % leaves room for other seeds.
    ablated = keras.models.clone_model(model)
    ablated.set_weights([np.zeros_like(w) if "/attn/proj/" in v.path else w
                         for v, w in zip(model.weights, model.get_weights(), strict=True)])
    without_attention = relative_error(ablated.predict_on_batch(x), want)
    assert relative_error(got, want) < 0.1 * without_attention


def test_blocks_merge_keys_values_at_high_resolution_and_queries_below():
    genotype = schema_io.load("search_space/references/segformer_b0.yaml")
    model = builder.build_model(genotype, 19, (64, 128))
    expected = {0.5: (2, 4), 0.75: (2, 4), 0.9: (4, 4)}  # (key/value stride, query stride)
    for ratio, (kv_stride, q_stride) in expected.items():
        settings = block_settings(with_token_merging(model, ratio))
        assert len(settings) == 8
        for s in settings.values():
            kv = s["sr_ratio"] >= 4  # stages 1-2 (sr 8, 4) merge keys/values, stages 3-4 (sr 2, 1) queries
            assert (s["tome_mode"], s["tome_stride"], s["tome_ratio"]) == (
                ("kv_bsm", kv_stride, ratio) if kv else ("q_bsm", q_stride, ratio))


def test_the_merged_network_converts_to_builtin_int8(model):
    merged = with_token_merging(model, 0.5)
    calibration = [image[None] for image in images(4, (64, 64), seed=2)]
    flatbuffer = packaging.convert(merged, "int8", representative=representative_dataset(calibration))
    ops = tflite_convert.op_names(flatbuffer)
    assert report.non_builtin(report.tflite_ops(flatbuffer)) == []
    assert {"TOPK_V2", "GATHER"} <= set(ops)  # the bipartite matching is in the file
    (logits,) = tflite_convert.run(flatbuffer, [np.round(smooth_image()).astype(np.uint8)])
    assert logits.shape == (1, 16, 16, 5)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, float("nan"), True, "0.5"])
def test_a_ratio_out_of_range_is_refused(ratio):
    with pytest.raises(TomeError, match=r"ratio must be a number in \[0, 1\)"):
        check_ratio(ratio)


def test_a_network_without_efficient_attention_is_refused():
    inputs = keras.Input((16, 16, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="convnet")
    with pytest.raises(TomeError, match="m.keras has no efficient-attention block"):
        with_token_merging(plain, 0.5, source="m.keras")


def test_a_rebuilt_network_with_other_weights_is_refused(model):
    other = tiny_segformer(input_size=(64, 64), num_classes=6)  # a head with one class more
    with pytest.raises(TomeError, match=r"m.keras: .* other weights than the original .*head"):
        check_same_weights(model, other, "m.keras")


def test_grid_method_places_window_merges_as_segformer_plus_plus_and_is_exact_at_ratio_zero(model):
    merged = with_token_merging(model, 0.75, method="grid")
    settings = block_settings(merged).values()
    # keys/values pooled where attention reduces them by 4 (stage 1 here), queries merged on the grid below
    assert [(s["sr_ratio"], s["tome_mode"], s["tome_ratio"]) for s in settings] == [(4, "kv_pool", 0.75),
                                                                                    (1, "q_grid", 0.75)]
    x = smooth_image()
    # merging is on: the ratio-0 copy is bit-identical, so any difference is the merging. It is small here:
    # SegFormer's initialization (std 0.02) makes attention nearly uniform over the keys, whatever the
    # query (measured: 8e-5 at most on logits of std 2)
    assert np.abs(merged.predict_on_batch(x) - model.predict_on_batch(x)).max() > 1e-5
    off = with_token_merging(merged, 0.0, method="grid")
    np.testing.assert_array_equal(off.predict_on_batch(x), model.predict_on_batch(x))


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_a_grid_ratio_that_is_not_a_square_window_is_refused(model, ratio):
    with pytest.raises(TomeError, match=rf"method grid merges s x s windows, .*got {ratio}"):
        with_token_merging(model, ratio, method="grid")
    with pytest.raises(TomeError, match="method must be one of bsm, grid, got 'topk'"):
        with_token_merging(model, 0.75, method="topk")


def test_grid_merged_segformer_b0_files_are_one_xnnpack_partition_and_int8_agrees_with_float():
    from mobileseg.litert_measure import measure_tflite

    size = (64, 64)
    keras.utils.set_random_seed(0)
    b0 = builder.build_model(schema_io.load("search_space/references/segformer_b0.yaml"), 5, size)
    randomize_statistics(b0, 0)
    merged = with_token_merging(b0, 0.75, method="grid")
    calibration = [image[None] for image in images(4, size, seed=2)]
    files = {"int8": packaging.convert(merged, "int8", representative=representative_dataset(calibration)),
             "fp32": packaging.convert(merged, "fp32", input_dtype="float32")}
    for mode, flatbuffer in files.items():
        assert not {"TOPK_V2", "GATHER", "SELECT", "SELECT_V2"} & set(tflite_convert.op_names(flatbuffer))
        record = measure_tflite(flatbuffer, threads=1, min_runs=2, max_runs=2)
        assert (record.xnnpack_partitions, list(record.fallback_ops)) == (1, []), mode
    x = np.round(smooth_image(size))
    want = merged.predict_on_batch(x)
    (fp32,) = tflite_convert.run(files["fp32"], [x])
    np.testing.assert_allclose(fp32, want, atol=1e-3 * np.abs(want).max())
    (int8,) = tflite_convert.run(files["int8"], [x])
    assert np.abs(int8 - want).mean() / want.std() < 0.1
