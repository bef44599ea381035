"""GAS's GCN-Guided Module: a cell's logits change through its neighbours only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.search.gcn import CellGraphConvolution, normalized_adjacency

# a path 0 - 1 - 2, node 3 alone; node 1 owns two rows
NODE_ROWS = [[0], [1, 2], [3], [4]]
ADJACENCY = [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
MASK = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]], "float32")  # row 5: no node


def layer(**kwargs):
    gcn = CellGraphConvolution(NODE_ROWS, ADJACENCY, hidden=8, **kwargs)
    gcn.build(MASK.shape)
    return gcn


def logits(seed=0):
    return (np.random.default_rng(seed).normal(size=MASK.shape) * MASK).astype("float32")


def test_a_cell_without_neighbours_and_a_row_of_no_cell_are_unchanged():
    gcn, x = layer(), logits()
    out = np.asarray(gcn(x, MASK))
    assert np.array_equal(out[[4, 5]], x[[4, 5]])
    assert not np.allclose(out[:4], x[:4])
    assert np.array_equal(out * (1 - MASK), np.zeros_like(out))  # nothing leaks past a row's alternatives


def test_a_cell_changes_through_its_neighbours_only():
    gcn, x = layer(), logits()
    base = np.asarray(gcn(x, MASK))
    node2 = x.copy()
    node2[3] += 5.0  # node 2 is a neighbour of node 1 only
    moved = np.asarray(gcn(node2, MASK))
    assert np.array_equal(moved[0], base[0])  # node 0 is two hops away: one layer does not reach it
    assert not np.allclose(moved[1:3], base[1:3])  # node 1 hears node 2
    assert np.allclose(moved[3] - node2[3], base[3] - x[3])  # node 2's own update comes from node 1, unchanged


def test_without_edges_it_is_the_identity_and_gamma_scales_the_update():
    isolated = CellGraphConvolution(NODE_ROWS, np.zeros((4, 4)), hidden=8)
    x = logits()
    assert np.array_equal(np.asarray(isolated(x, MASK)), x)
    half, full = layer(gamma=0.5), layer(gamma=1.0)
    assert np.allclose(np.asarray(full(x, MASK)) - x, 2 * (np.asarray(half(x, MASK)) - x), atol=1e-6)


def test_gradients_reach_the_logits_through_neighbours_and_every_map():
    gcn = layer()
    x = tf.Variable(logits())
    with tf.GradientTape() as tape:
        out = gcn(x, MASK)
        loss = tf.reduce_sum(out[1] ** 2)  # node 1's first row
    gradients = tape.gradient(loss, [x, *gcn.trainable_weights])
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients[1:])
    assert float(tf.reduce_sum(tf.abs(gradients[0][0]))) > 0 and float(tf.reduce_sum(tf.abs(gradients[0][4]))) == 0


def test_normalized_adjacency_is_symmetric_without_self_loops():
    a_hat = normalized_adjacency(np.array(ADJACENCY) + np.eye(4))  # a diagonal is ignored
    assert np.allclose(a_hat, a_hat.T) and np.all(np.diag(a_hat) == 0) and np.all(a_hat[3] == 0)
    assert a_hat[0, 1] == pytest.approx(1 / np.sqrt(2))


def test_config_round_trip():
    gcn = layer(gamma=0.25, seed=3)
    clone = CellGraphConvolution.from_config(gcn.get_config())
    clone.build(MASK.shape)
    clone.set_weights(gcn.get_weights())
    assert np.allclose(np.asarray(clone(logits(), MASK)), np.asarray(gcn(logits(), MASK)))
    assert keras.saving.get_registered_object("mobileseg>CellGraphConvolution") is CellGraphConvolution
