"""The expected latency: the table's value for a one-hot distribution, linear in each cell's probabilities."""

import numpy as np
import pytest
import tensorflow as tf

from mobileseg.latency.overhead import Overhead
from mobileseg.latency.predictor import MeasuringLatencyModel, MissingBlockError
from mobileseg.search.cell_choices import CellChoices
from mobileseg.search.expected_latency import ExpectedLatency
from mobileseg.supernet.plan import SupernetPlan
from tests.search.latency_tables import fake_table, latency_model
from tests.supernet.spaces import all_ops, tiny

SIZE, CLASSES = (32, 32), 5


def setup(space, overhead=Overhead("affine", scale=1.2, offset_ms=0.5)):
    table = fake_table(space, SIZE, CLASSES, overhead=overhead)
    model = latency_model(table, SIZE, CLASSES)
    choices = CellChoices(space, SupernetPlan(space, SIZE), CLASSES)
    return choices, model, ExpectedLatency(choices, model)


def one_hot(choices, indices):
    out = np.zeros(choices.mask.shape, np.float32)
    out[np.arange(len(indices)), indices] = 1.0
    return out


@pytest.mark.parametrize("space", [all_ops(), all_ops("mlp"), tiny()], ids=["allops-light", "allops-mlp", "tiny"])
def test_a_one_hot_distribution_costs_exactly_what_the_table_predicts_for_its_network(space):
    choices, model, latency = setup(space)
    rng = np.random.default_rng(0)
    dropped = 0
    for _ in range(25):
        sample, _ = choices.sample(rng.normal(size=choices.mask.shape) * 3, rng)
        ms, usable = latency.variant_ms(sample)
        expected = float(latency.expected_ms(one_hot(choices, sample.indices), ms, usable))
        assert expected == pytest.approx(model.latency_ms(sample.genotype), rel=1e-5)
        dropped += len(sample.genotype.branches) < len(choices.plan.branches)
    assert dropped > 0  # networks without the optional branch (fusions reading it become skip) were checked


def test_a_cell_costs_the_probability_weighted_latency_of_its_candidates():
    choices, model, latency = setup(tiny())
    base, _ = choices.sample(np.zeros(choices.mask.shape), np.random.default_rng(1))
    kernel = choices.rows["branches[0].cells[2]/0.kernel"]  # 3 or 5: changes no other cell's shapes
    indices = base.indices.copy()
    indices[choices.rows["branches[0].cells[2]"]] = 0  # the mbconv alternative, whose kernel it is
    costs = []
    for k in (0, 1):
        indices[kernel] = k
        costs.append(model.latency_ms(choices.genotype(indices)[1]))
    assert costs[0] != costs[1]
    probabilities = one_hot(choices, indices)
    probabilities[kernel, :2] = [0.3, 0.7]
    context = choices.most_likely(probabilities)
    ms, usable = latency.variant_ms(context)
    assert float(latency.expected_ms(probabilities, ms, usable)) == pytest.approx(0.3 * costs[0] + 0.7 * costs[1],
                                                                                  rel=1e-5)


def test_the_expected_latency_has_gradients_for_the_choices_that_change_it():
    choices, _, latency = setup(tiny())
    logits = tf.Variable(np.zeros(choices.mask.shape, np.float32))
    mask = tf.constant(choices.mask)
    context = choices.most_likely(np.asarray(tf.nn.softmax(tf.where(mask > 0, logits, -1e9), axis=1)))
    ms, usable = latency.variant_ms(context)
    with tf.GradientTape() as tape:
        expected = latency.expected_ms(tf.nn.softmax(tf.where(mask > 0, logits, -1e9), axis=1), ms, usable)
    gradient = tape.gradient(expected, logits).numpy()
    op = choices.rows["branches[0].cells[2]"]  # mbconv (costs) or skip (free)
    assert gradient[op, 0] > 0 > gradient[op, 1]  # descending lowers the mbconv's logit
    assert np.all(gradient[choices.mask == 0] == 0)


def test_blocks_missing_from_a_read_only_table_are_named_and_a_measuring_model_measures_them():
    space = tiny()
    choices, model, latency = setup(space)
    sample, _ = choices.sample(np.zeros(choices.mask.shape), np.random.default_rng(0))
    key = model.signatures_of(sample.genotype)[0].key  # a block of the network the context is
    del model.table.entries[key]
    with pytest.raises(MissingBlockError, match="has no entry in the latency table"):
        latency.variant_ms(sample)
    measured = []
    measuring = MeasuringLatencyModel(model.table, model.signatures_of, make_model=lambda signature: signature,
                                      measurer=lambda flatbuffer: measured.append(flatbuffer) or {
                                          "median_ms": 1.0, "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "runs": 1,
                                          "xnnpack_partitions": 1, "fallback_ops": []},
                                      convert=lambda signature, mode: signature.key.encode(), progress=False)
    ExpectedLatency(choices, measuring).variant_ms(sample)
    assert measured == [key.encode()] and key in model.table
