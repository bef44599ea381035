"""Grid query merging (Liang et al., NeurIPS 2022, static form): against a numpy reference, exact where
tokens repeat, sharper than plain pooling at a boundary off the grid, and one XNNPACK partition."""

import keras
import numpy as np
import pytest

from mobileseg.blocks.efficient_attention import EfficientAttention, SegFormerBlock
from mobileseg.blocks.grid_merging import (
    NEIGHBOURS,
    RECONSTRUCTION_TEMPERATURE,
    from_windows,
    grid_merge,
    grid_unmerge,
    to_windows,
)
from mobileseg.deploy import tflite_convert
from mobileseg.litert_measure import measure_tflite
from tests.layer_checks import check_layer, randomized


def reference_merge(x, size):
    """Window means with the grid anchored at the top-left, ragged windows averaging what they hold."""
    batch, height, width, channels = x.shape
    rows, cols = -(-height // size), -(-width // size)
    out = np.zeros((batch, rows, cols, channels))
    for i in range(rows):
        for j in range(cols):
            out[:, i, j] = x[:, i * size:(i + 1) * size, j * size:(j + 1) * size].mean(axis=(1, 2))
    return out


def reference_unmerge(x, destinations, outputs, size):
    """Liang et al.'s token reconstruction over each token's 3x3 neighbouring windows, one token at a time."""
    batch, height, width, channels = x.shape
    rows, cols = destinations.shape[1:3]
    out = np.zeros((batch, height, width, outputs.shape[-1]))
    for b in range(batch):
        for y in range(height):
            for z in range(width):
                cells = [(min(max(y // size + dy, 0), rows - 1), min(max(z // size + dx, 0), cols - 1))
                         for dy, dx in NEIGHBOURS]
                distance = np.array([((x[b, y, z] - destinations[b, i, j]) ** 2).mean() for i, j in cells])
                weight = np.exp(-(distance - distance.min()) / RECONSTRUCTION_TEMPERATURE)
                weight /= weight.sum()
                out[b, y, z] = sum(w * outputs[b, i, j] for w, (i, j) in zip(weight, cells, strict=True))
    return out


@pytest.mark.parametrize("height, width, size", [(8, 8, 2), (7, 9, 2), (9, 6, 4), (3, 2, 4)])
def test_merge_and_unmerge_match_the_reference(height, width, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, height, width, 6)).astype("float32") * 0.5
    pooled = np.asarray(grid_merge(x, size))
    np.testing.assert_allclose(pooled, reference_merge(x, size), rtol=1e-5, atol=1e-6)
    outputs = rng.normal(size=(*pooled.shape[:3], 5)).astype("float32")
    got = np.asarray(grid_unmerge(x, pooled, outputs, size))
    np.testing.assert_allclose(got, reference_unmerge(x, pooled, outputs, size), rtol=1e-4, atol=1e-5)


def test_windows_round_trip_with_ragged_edges():
    x = np.random.default_rng(1).normal(size=(2, 7, 5, 3)).astype("float32")
    windows = to_windows(x, 2, 4, 3)
    assert tuple(windows.shape) == (2 * 4 * 3, 4, 3)
    np.testing.assert_array_equal(from_windows(windows, 2, 4, 3, 7, 5), x)


def boundary_map(channels=8, seed=2):
    """An 8x8 map of two flat regions split at column 3, which cuts the 2x2 windows of columns 2-3."""
    rng = np.random.default_rng(seed)
    left, right = 3.0 * rng.normal(size=channels), 3.0 * rng.normal(size=channels)  # far apart
    x = np.empty((1, 8, 8, channels), "float32")
    x[:, :, :3], x[:, :, 3:] = left, right
    return x


def test_a_token_cut_off_by_the_grid_takes_the_output_of_the_region_it_belongs_to():
    x = boundary_map()
    plain = randomized(EfficientAttention(8, num_heads=2), [x.shape])
    merged = {}
    for mode in ("q_grid", "q_pool"):
        layer = EfficientAttention(8, num_heads=2, tome_mode=mode, tome_ratio=0.75)
        layer.build(x.shape)
        layer.set_weights(plain.get_weights())
        merged[mode] = np.asarray(layer(x))
    want = np.asarray(plain(x))
    # Inside a region, every window is flat: both merges give the exact output there.
    for got in merged.values():
        np.testing.assert_allclose(got[:, :, :2], want[:, :, :2], atol=1e-5)
        np.testing.assert_allclose(got[:, :, 4:], want[:, :, 4:], atol=1e-5)
    # Column 3 is right-region but shares its window with column 2: plain pooling gives it the
    # mixed window's output; the reconstruction finds the flat right-region window next to it.
    error = {mode: np.abs(got[:, :, 2:4] - want[:, :, 2:4]).max() for mode, got in merged.items()}
    assert error["q_grid"] < 0.01 * error["q_pool"], error


def test_grid_merging_block_passes_layer_checks_in_one_xnnpack_partition(tmp_path):
    shape = (1, 12, 10, 16)

    def make():
        return randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2, tome_mode="q_grid", tome_ratio=0.75), [shape])

    report = check_layer(make, [shape], tmp_path, int8_max_relative_error=0.1)
    assert not {"TOPK_V2", "GATHER", "SELECT", "SELECT_V2"} & set(report["int8_ops"])
    inputs = keras.Input(shape[1:], batch_size=1)
    model = keras.Model(inputs, make()(inputs))
    for mode in ("fp32", "int8"):
        flatbuffer = tflite_convert.convert(model, mode, representative=tflite_convert.random_representative(
            [shape], num_samples=4))
        record = measure_tflite(flatbuffer, threads=1, min_runs=2, max_runs=2)
        assert (record.xnnpack_partitions, list(record.fallback_ops)) == (1, []), mode


def test_ratio_zero_is_no_merging():
    x = np.random.default_rng(5).normal(size=(1, 8, 8, 16)).astype("float32")
    plain = randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2), [x.shape])
    off = SegFormerBlock(16, num_heads=2, sr_ratio=2, tome_mode="q_grid", tome_ratio=0.0)
    off.build(x.shape)
    off.set_weights(plain.get_weights())
    np.testing.assert_array_equal(off(x), plain(x))


def test_a_ratio_that_is_not_a_square_window_is_refused():
    with pytest.raises(ValueError, match=r"tome_mode 'q_grid' averages s x s windows, so tome_ratio must be"):
        SegFormerBlock(16, num_heads=2, tome_mode="q_grid", tome_ratio=0.5)
