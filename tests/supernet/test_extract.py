import numpy as np
import pytest

from mobileseg.supernet.extract import halves, slice_like
from mobileseg.supernet.model import Supernet
from tests.supernet import spaces


def randomize_statistics(supernet, rng):
    """Non-trivial BN statistics and norm scales, so that a wrong slice shows in the output."""
    for variable in supernet.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name == "moving_variance":
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
        elif name in ("moving_mean", "beta"):
            variable.assign(rng.normal(0.0, 0.5, variable.shape).astype("float32"))
        elif name == "gamma":
            variable.assign(rng.normal(1.0, 0.5, variable.shape).astype("float32"))


def assert_extract_matches(supernet, genotypes, images, training=False):
    for genotype in genotypes:
        expected = supernet((images, supernet.encode(genotype)), training=training).numpy()
        model = supernet.extract(genotype)
        if training:
            model.get_layer("head").dropout_layer.rate = 0.0
        got = model(images, training=training).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()),
                                   err_msg=f"{[(b.name, [c.OP for c in b.cells]) for b in genotype.branches]}")


def test_extract_equals_the_supernet_on_the_demo_space():
    rng = np.random.default_rng(0)
    supernet = Supernet(spaces.demo(), num_classes=5, input_size=(32, 32))
    randomize_statistics(supernet, rng)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    genotypes = [supernet.largest(), supernet.smallest()] + [supernet.sample(rng) for _ in range(3)]
    assert_extract_matches(supernet, genotypes, images)


@pytest.mark.parametrize("head, count", [("light", 16), ("mlp", 6)])
def test_extract_equals_the_supernet_for_every_op(head, count):
    """Every op, token-merging mode, fusion, fork and context choice, in inference and training mode."""
    rng = np.random.default_rng(1)
    supernet = Supernet(spaces.all_ops(head), num_classes=4, input_size=(32, 32))
    supernet.head_layer.dropout_layer.rate = 0.0
    randomize_statistics(supernet, rng)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")

    def groups(genotype):
        return {(s.name, int(supernet.encode(genotype)[s.offset])) for s in supernet.plan.slots}

    genotypes = [supernet.largest(), supernet.smallest()]
    seen = groups(genotypes[0]) | groups(genotypes[1])
    for genotype in (supernet.sample(rng) for _ in range(100)):  # networks that run groups not run yet
        if groups(genotype) - seen and len(genotypes) < count:
            genotypes.append(genotype)
            seen |= groups(genotype)
    def op(slot_name, index):
        slot = next(s for s in supernet.plan.slots if s.name == slot_name)
        return "absent" if index == slot.absent_index else slot.groups[index].wide.OP + str(slot.groups[index].key)

    every = {op(s.name, i) for s in supernet.plan.slots for i in range(len(s.groups))}
    if head == "light":
        assert every - {op(*g) for g in seen} == set()  # every op variant (token merging, fusion modes...) ran
    assert_extract_matches(supernet, genotypes[:count // 2], images)
    assert_extract_matches(supernet, genotypes[count // 2:], images, training=True)


def test_slices():
    kernel = np.arange(5 * 5 * 4 * 6, dtype="float32").reshape(5, 5, 4, 6)
    np.testing.assert_array_equal(slice_like(kernel, (3, 3, 2, 4), "conv/kernel"), kernel[1:4, 1:4, :2, :4])
    np.testing.assert_array_equal(slice_like(kernel, (5, 5, 2, 4), "pos_emb"), kernel[:, :, :2, :4])
    np.testing.assert_array_equal(halves(np.arange(8), 2), [0, 1, 4, 5])
    with pytest.raises(ValueError, match="smaller than the subnet's"):
        slice_like(kernel, (7, 7, 2, 4), "conv/kernel")
