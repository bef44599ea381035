"""The optimizer, the image cache and the epoch batches a training run is built from."""

import keras
import numpy as np
import tensorflow as tf

from mobileseg.training import factories
from tests.training.test_trainer import SIZE, build, config, source


def test_cache_auto_decodes_only_within_the_memory_budget(monkeypatch):
    data, settings = source(), config()
    pairs = data.pairs("train")
    assert factories.cached_images(data, pairs, settings) is not None
    assert factories.cached_images(data, pairs, config(cache_images="no")) is None
    monkeypatch.setattr(factories, "CACHE_BUDGET_BYTES", 1000)
    assert factories.cached_images(data, pairs, settings) is None
    assert factories.cached_images(data, pairs, config(cache_images="yes")) is not None


def test_epoch_batches_depend_on_seed_and_epoch_only():
    data, settings = source(), config()
    pairs = data.pairs("train")

    def first_images(epoch, seed=0):
        keras.utils.set_random_seed(seed)
        return np.concatenate([x.numpy() for x, _ in factories.epoch_batches(data, pairs, settings, epoch)])

    epoch_1 = first_images(1)
    first_images(0)
    np.testing.assert_array_equal(first_images(1), epoch_1)
    assert not np.array_equal(first_images(2), epoch_1)
    assert epoch_1.shape == (12, *SIZE, 3)


def test_make_optimizer_decays_kernels_but_not_norms_and_biases():
    model = build()
    variables = model.trainable_variables
    optimizer = factories.make_optimizer(config(lr=0.1, warmup_epochs=0, weight_decay=0.5), steps_per_epoch=6)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))  # decay only
    changed = {v.name for v, old in zip(variables, before) if not np.array_equal(v.numpy(), old)}
    assert "kernel" in changed and not changed & {"gamma", "beta", "bias"}
