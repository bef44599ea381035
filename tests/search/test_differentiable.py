"""The differentiable search: gradients from the cross-entropy and the latency term.

A whole run (outputs, resume, lambda over epochs) is tested through the command, in test_main_differentiable.py.
"""

import numpy as np
import pytest

from mobileseg.data.synthetic import SyntheticSource
from mobileseg.search.differentiable import DifferentiableSearch
from mobileseg.search.differentiable_config import DifferentiableConfig
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from tests.search.latency_tables import fake_table, latency_model
from tests.supernet.spaces import tiny

SIZE, CLASSES = (32, 32), 8


def make_search(gcn=False, epochs=1, **kwargs):
    space = tiny()
    model = latency_model(fake_table(space, SIZE, CLASSES), SIZE, CLASSES)
    config = DifferentiableConfig(SupernetTrainConfig(epochs=epochs, batch_size=2, steps_per_epoch=2, verbose=False),
                                  gcn=gcn, calib_batches=1, val_images=2, **kwargs)
    search = DifferentiableSearch(Supernet(space, CLASSES, SIZE), model, config)
    search.set_steps_per_epoch(2)
    return search


@pytest.fixture(scope="module")
def batch():
    images, labels = SyntheticSource(4, size=SIZE).arrays("train")
    return images[:2].astype("float32"), labels[:2].astype("int32")


@pytest.fixture(scope="module")
def search():
    return make_search()


def sample_with(search, rng, op_index):
    """A sample whose main_2 cell took alternative ``op_index`` (0: mbconv, 1: skip)."""
    row = search.choices.rows["branches[0].cells[2]"]
    for _ in range(100):
        sample, noise = search.choices.sample(search.arch.logits().numpy(), rng)
        if sample.indices[row] == op_index:
            return sample, noise
    raise AssertionError("no such sample")


def test_the_supernet_gates_are_ones_in_the_forward_pass_and_scale_what_they_gate(search, batch):
    supernet, images = search.supernet, batch[0]
    arch = supernet.encode(supernet.largest())
    plain = np.asarray(supernet((images, arch)))
    ones = np.ones(len(supernet.plan.slots) + 1, "float32")
    assert np.array_equal(np.asarray(supernet((images, arch), gates=ones)), plain)
    head = ones.copy()
    head[-1] = 0.5
    assert np.allclose(np.asarray(supernet((images, arch), gates=head)), 0.5 * plain, atol=1e-6)
    first = ones.copy()
    first[0] = 0.0  # the stem's output: every later cell sees zeros
    assert not np.allclose(np.asarray(supernet((images, arch), gates=first)), plain)


def test_the_cross_entropy_gives_gradients_to_the_rows_the_sampled_network_went_through(search, batch):
    sample, noise = sample_with(search, np.random.default_rng(0), op_index=0)
    ce, expected, latency_loss, gradients = search.arch_gradients(*batch, sample, noise, latency_weight=0.0)
    logits = gradients[0].numpy()
    assert float(ce) > 0 and float(expected) > 0 and float(latency_loss) == 0.0
    for path, row in search.choices.rows.items():
        moved = np.abs(logits[row]).sum()
        if path in sample.decisions and search.choices.sizes[row] > 1:
            assert moved > 0, path  # straight-through: every alternative of a sampled choice
        else:
            assert moved == 0, path  # a choice the network did not go through, without latency: nothing


def test_the_latency_term_gives_gradients_to_every_choice_that_changes_the_cost(search, batch):
    sample, noise = sample_with(search, np.random.default_rng(1), op_index=1)  # main_2 skipped
    _, _, latency_loss, gradients = search.arch_gradients(*batch, sample, noise, latency_weight=1e4)
    logits = gradients[0].numpy()
    op, kernel = search.choices.rows["branches[0].cells[2]"], search.choices.rows["branches[0].cells[2]/0.kernel"]
    assert float(latency_loss) > 0
    assert logits[op, 0] > 0 > logits[op, 1]  # descent lowers the costly mbconv, raises the free skip
    assert logits[kernel, 1] > 0 > logits[kernel, 0]  # not sampled, yet the 5x5 kernel is pushed down: latency only


def test_with_the_gcn_gradients_reach_its_maps_and_neighbouring_cells(batch):
    search = make_search(gcn=True)
    sample, noise = sample_with(search, np.random.default_rng(0), op_index=0)
    _, _, _, gradients = search.arch_gradients(*batch, sample, noise, latency_weight=0.0)
    assert len(gradients) == 4 and all(float(np.abs(g.numpy()).sum()) > 0 for g in gradients)


def test_architecture_steps_with_a_strong_latency_term_make_the_distribution_cheaper(batch):
    search = make_search(latency_weight=20.0, arch_lr=0.05)
    rng = np.random.default_rng(0)
    before = search.expected_ms()
    for _ in range(15):
        search.arch_step(*batch, rng)
    assert search.expected_ms() < 0.9 * before

