import keras
import numpy as np
import pytest

from mobileseg.blocks.efficient_attention import EfficientAttention, SegFormerBlock
from mobileseg.blocks.token_merging import (
    BipartitePlan,
    bipartite_soft_matching,
    check_tome,
    merge_tokens,
    neighbour_merge,
    neighbour_unmerge,
    pool_size,
    unmerge_tokens,
)
from tests.layer_checks import check_layer, randomized

TOME_CASES = [("kv_pool", 0.75), ("kv_bsm", 0.5), ("q_pool", 0.75), ("q_bsm", 0.6)]


@pytest.mark.parametrize("mode, ratio", TOME_CASES, ids=[mode for mode, _ in TOME_CASES])
def test_merging_blocks_pass_layer_checks(mode, ratio, tmp_path):
    # Bipartite matching on int8 similarities can pick another destination than float for
    # near-tied tokens. Measured on the attention alone: at most 0.045 of the output's std
    # (q_bsm); 0.1 is allowed for the block.
    def make():
        block = SegFormerBlock(16, num_heads=2, sr_ratio=2, tome_mode=mode, tome_ratio=ratio)
        return randomized(block, [(1, 16, 16, 16)])

    report = check_layer(make, [(1, 16, 16, 16)], tmp_path, int8_max_relative_error=0.1)
    expected = {"kv_pool": "AVERAGE_POOL_2D", "q_pool": "RESIZE_NEAREST_NEIGHBOR", "kv_bsm": "TOPK_V2",
                "q_bsm": "TOPK_V2"}[mode]
    assert expected in report["int8_ops"]


def tomesd_reference(x, height, width, stride, r):
    """tomesd's bipartite_soft_matching_random2d(no_rand=True) + merge(mean) + unmerge, one sample, numpy."""
    buffer = np.zeros((height, width))
    buffer[0:(height // stride) * stride:stride, 0:(width // stride) * stride:stride] = -1
    order = np.argsort(buffer.reshape(-1), kind="stable")
    num_dst = int((buffer == -1).sum())
    dst_ids, src_ids = order[:num_dst], order[num_dst:]
    metric = x / np.linalg.norm(x, axis=-1, keepdims=True)
    scores = metric[src_ids] @ metric[dst_ids].T
    node_max, node_idx = scores.max(-1), scores.argmax(-1)
    edge = np.argsort(-node_max, kind="stable")
    unm_idx, src_idx = edge[r:], edge[:r]
    dst_idx = node_idx[src_idx]

    src, dst = x[src_ids], x[dst_ids].copy()
    counts = np.ones((num_dst, 1))
    for i, j in zip(src_idx, dst_idx):
        dst[j] += src[i]
        counts[j] += 1
    merged = np.concatenate([src[unm_idx], dst / counts])

    def unmerge(y):
        out = np.zeros((height * width, y.shape[-1]))
        kept, dst_out = y[:len(unm_idx)], y[len(unm_idx):]
        out[dst_ids] = dst_out
        out[src_ids[unm_idx]] = kept
        out[src_ids[src_idx]] = dst_out[dst_idx]
        return out
    return merged, unmerge


@pytest.mark.parametrize("height, width, stride, ratio", [(6, 8, 2, 0.5), (7, 5, 2, 0.3), (8, 8, 4, 0.8),
                                                          (4, 4, 2, 0.75)])
def test_bipartite_matching_matches_tomesd(height, width, stride, ratio):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, height * width, 8)).astype("float32")
    plan = BipartitePlan.for_grid(height, width, ratio, stride)
    matching = bipartite_soft_matching(x, plan)
    merged = np.asarray(merge_tokens(x, plan, matching))
    y = rng.normal(size=merged.shape).astype("float32")
    restored = np.asarray(unmerge_tokens(y, plan, matching))
    assert merged.shape == (3, plan.num_kept, 8) and restored.shape == x.shape
    for sample in range(3):
        want_merged, want_unmerge = tomesd_reference(x[sample], height, width, stride, plan.num_merged)
        np.testing.assert_allclose(merged[sample], want_merged, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(restored[sample], want_unmerge(y[sample]), rtol=1e-6, atol=1e-6)


def duplicated_grid(seed=0, size=4, channels=16):
    """A size x size token grid whose token right of each 2x2 window's top-left (destination) copies it."""
    grid = np.random.default_rng(seed).normal(size=(size, size, channels)).astype("float32")
    grid[0::2, 1::2] = grid[0::2, 0::2]
    duplicates = [row * size + col for row in range(0, size, 2) for col in range(1, size, 2)]
    return grid.reshape(1, size * size, channels), duplicates


def test_bipartite_matching_merges_exact_duplicates_first():
    tokens, duplicates = duplicated_grid()
    plan = BipartitePlan.for_grid(4, 4, ratio=len(duplicates) / 16, stride=2)
    assert plan.num_merged == len(duplicates) == 4
    matching = bipartite_soft_matching(tokens, plan)
    merged_sources = plan.src_index[np.asarray(matching.edge_order)[0, :plan.num_merged]]
    assert sorted(merged_sources.tolist()) == duplicates
    targets = plan.dst_index[np.asarray(matching.node_index)[0]]
    for source in duplicates:  # each duplicate goes to the destination it copies
        assert targets[plan.src_index.tolist().index(source)] == source - 1
    merged = np.asarray(merge_tokens(tokens, plan, matching))[0]
    kept = [t for t in range(16) if t not in duplicates and t not in plan.dst_index]
    np.testing.assert_allclose(merged[-4:], tokens[0, plan.dst_index], atol=1e-6)   # averages of equal tokens
    np.testing.assert_allclose(np.sort(merged[:-4], axis=0), np.sort(tokens[0, kept], axis=0), atol=1e-6)


def test_merging_duplicate_queries_leaves_the_attention_output_unchanged():
    tokens, duplicates = duplicated_grid(seed=1)
    x = tokens.reshape(1, 4, 4, 16)
    plain = randomized(EfficientAttention(16, num_heads=2), [x.shape])
    merging = EfficientAttention(16, num_heads=2, tome_mode="q_bsm", tome_ratio=len(duplicates) / 16)
    merging.build(x.shape)
    merging.set_weights(plain.get_weights())
    np.testing.assert_allclose(merging(x), plain(x), rtol=1e-5, atol=1e-5)


def test_neighbour_merging_divides_the_tokens_and_unmerging_restores_them():
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 4)).astype("float32")
    for ratio, side in ((0.75, 2), (0.9375, 4)):
        assert pool_size("test", ratio) == side
        pooled = np.asarray(neighbour_merge(x, side))
        assert pooled.shape[1] * pooled.shape[2] == 64 // side ** 2
        np.testing.assert_allclose(pooled[:, 0, 0], x[:, :side, :side].mean(axis=(1, 2)), atol=1e-6)
        restored = np.asarray(neighbour_unmerge(pooled, 8, 8))
        assert restored.shape == x.shape
        np.testing.assert_allclose(restored[:, :side, :side], np.broadcast_to(pooled[:, :1, :1], (2, side, side, 4)))


def test_bipartite_merging_divides_the_tokens_and_unmerging_restores_them():
    x = np.random.default_rng(3).normal(size=(2, 64, 4)).astype("float32")
    plan = BipartitePlan.for_grid(8, 8, ratio=0.75, stride=2)
    assert plan.num_merged == 48 and plan.num_kept == 16  # every source merged: only destinations stay
    matching = bipartite_soft_matching(x, plan)
    merged = np.asarray(merge_tokens(x, plan, matching))
    assert merged.shape == (2, 16, 4)
    restored = np.asarray(unmerge_tokens(merged, plan, matching))
    assert restored.shape == x.shape
    np.testing.assert_allclose(restored[:, plan.dst_index], merged, atol=1e-6)


def test_each_sample_of_a_batch_is_matched_on_its_own():
    x = np.random.default_rng(4).normal(size=(2, 16, 8, 8)).astype("float32")
    block = randomized(SegFormerBlock(8, num_heads=2, sr_ratio=2, tome_mode="q_bsm", tome_ratio=0.5), [x.shape])
    together = np.asarray(block(x))
    for sample in range(2):
        np.testing.assert_allclose(together[sample], np.asarray(block(x[sample:sample + 1]))[0], atol=1e-5)


@pytest.mark.parametrize("mode", ["kv_pool", "kv_bsm", "q_pool", "q_bsm"])
def test_ratio_zero_is_no_merging(mode):
    x = np.random.default_rng(5).normal(size=(1, 8, 8, 16)).astype("float32")
    plain = randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2), [x.shape])
    off = SegFormerBlock(16, num_heads=2, sr_ratio=2, tome_mode=mode, tome_ratio=0.0)
    off.build(x.shape)
    off.set_weights(plain.get_weights())
    np.testing.assert_array_equal(off(x), plain(x))


@pytest.mark.parametrize("mode, ratio", TOME_CASES, ids=[mode for mode, _ in TOME_CASES])
def test_merging_needs_no_new_weights(mode, ratio, tmp_path):
    x = np.random.default_rng(6).normal(size=(1, 16, 16, 16)).astype("float32")
    trained = randomized(SegFormerBlock(16, num_heads=2, sr_ratio=2), [x.shape])
    path = tmp_path / "trained.weights.h5"
    keras_model = keras.Sequential([keras.Input(x.shape[1:]), trained])
    keras_model.save_weights(path)
    config = trained.get_config() | {"tome_mode": mode, "tome_ratio": ratio}
    merging = SegFormerBlock.from_config(config)
    merging_model = keras.Sequential([keras.Input(x.shape[1:]), merging])
    merging_model.load_weights(path)
    names = lambda layer: [(*w.path.split("/")[-2:], tuple(w.shape)) for w in layer.weights]  # noqa: E731
    assert names(merging) == names(trained)
    for got, want in zip(merging.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    out = np.asarray(merging(x))
    assert out.shape == x.shape and np.all(np.isfinite(out))
    assert not np.allclose(out, np.asarray(trained(x)))  # merging is on


def test_small_grids_stay_unmerged():
    plan = BipartitePlan.for_grid(1, 6, ratio=0.5, stride=2)
    assert len(plan.dst_index) == 0 and plan.num_merged == 0 and plan.num_kept == 6


@pytest.mark.parametrize("mode, ratio, stride, message", [
    ("kv_pool", 0.5, 2, r"tome_ratio must be 1 - 1/s\*\*2"),
    ("q_bsm", 0.8, 2, "removes more tokens than the 0.75 that are sources with tome_stride=2"),
    ("none", 0.5, 2, "needs a tome_mode other than 'none'"),
    ("kv_bsm", 0.5, 1, "tome_stride must be an integer >= 2"),
    ("q_pool", -0.1, 2, r"tome_ratio must be a number in \[0, 1\)"),
    ("q_merge", 0.5, 2, "unknown tome_mode 'q_merge'; expected one of none, kv_pool, kv_bsm, q_pool, q_bsm"),
])
def test_bad_token_merging_settings_raise(mode, ratio, stride, message):
    with pytest.raises(ValueError, match=message):
        check_tome("SegFormerBlock", mode, ratio, stride)
    with pytest.raises(ValueError, match=message):
        SegFormerBlock(16, num_heads=2, tome_mode=mode, tome_ratio=ratio, tome_stride=stride)


def test_merging_block_trains_with_a_dynamic_batch():
    inputs = keras.Input((8, 8, 16))
    block = SegFormerBlock(16, num_heads=2, sr_ratio=2, tome_mode="q_bsm", tome_ratio=0.5, drop_path=0.1)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(block(inputs)))
    model.compile("adam", "mse")
    x = np.random.default_rng(7).normal(size=(3, 8, 8, 16)).astype("float32")
    history = model.fit(x, np.zeros((3, 16), "float32"), batch_size=2, epochs=1, verbose=0)  # batches of 2 and 1
    assert np.isfinite(history.history["loss"][0])


def test_a_map_too_small_to_merge_runs_unmerged():
    x = np.random.default_rng(8).normal(size=(1, 1, 6, 8)).astype("float32")
    plain = randomized(EfficientAttention(8, num_heads=1), [x.shape])
    merging = EfficientAttention(8, num_heads=1, tome_mode="q_bsm", tome_ratio=0.5)
    merging.build(x.shape)
    merging.set_weights(plain.get_weights())
    np.testing.assert_array_equal(merging(x), plain(x))
