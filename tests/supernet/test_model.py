import numpy as np
import pytest
import tensorflow as tf

from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.plan import SupernetError
from tests.supernet import spaces

SIZE = (32, 32)


@pytest.fixture(scope="module")
def supernet():
    return Supernet(spaces.demo(), num_classes=5, input_size=SIZE)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, *SIZE, 3)).astype("float32")


def test_one_trace_serves_every_sampled_architecture(supernet, images):
    traces = []

    @tf.function
    def forward(images, arch):
        traces.append(1)  # runs only while tracing
        return supernet((images, arch), training=False)

    rng = np.random.default_rng(1)
    genotypes = [supernet.sample(rng) for _ in range(10)]
    outputs = [forward(images, supernet.encode(g)).numpy() for g in genotypes]
    assert len(traces) == 1 and forward.experimental_get_tracing_count() == 1
    assert len({tuple(supernet.encode(g)) for g in genotypes}) > 5  # really different networks
    assert all(o.shape == (2, 4, 4, 5) for o in outputs)


def test_decisions_to_tensor(supernet, images):
    decisions = supernet.space.sample_decisions(np.random.default_rng(2))
    while True:  # a combination the builder can build
        try:
            arch = supernet.decisions_to_tensor(decisions)
            break
        except GenotypeError:
            decisions = supernet.space.sample_decisions(np.random.default_rng(len(decisions)))
    assert arch.dtype == tf.int32 and tuple(arch.shape) == (supernet.arch_size,)
    assert np.array_equal(arch.numpy(), supernet.encode(supernet.space.materialize(decisions)))


def test_largest_and_smallest_follow_the_rule(supernet):
    largest, smallest = supernet.largest(), supernet.smallest()
    assert [b.name for b in largest.branches] == ["main", "low"]
    main = largest.branch("main").cells
    assert main[2].width == 24 and all(c.OP != "skip" for c in main) and largest.branch("low").cells[1].OP != "skip"
    assert all(getattr(c, "width", 24) == 24 and getattr(c, "kernel", 5) in (3, 5) for c in main[2:])
    for index in (3, 4):  # the group with the most multiply-accumulates at that position
        slot = supernet.plan.slot("main", index)
        costs = supernet._group_costs(slot)
        assert main[index].OP == slot.groups[costs.index(max(costs))].wide.OP
    assert largest.head.width == 24
    assert [b.name for b in smallest.branches] == ["main"]
    assert [c.OP for c in smallest.branch("main").cells][3:] == ["skip", "skip"]
    assert smallest.branch("main").cells[2].width == 16 and smallest.head.width == 16
    for genotype in (largest, smallest):
        supernet.encode(genotype)  # in the space and buildable


def test_narrow_widths_use_the_first_channels_of_the_shared_kernels(images):
    supernet = Supernet(spaces.tiny(), num_classes=3, input_size=SIZE)
    space = supernet.space
    narrow = space.materialize({"branches[0].cells[0].width": 0, "branches[0].cells[2]": 0,
                                "branches[0].cells[2]/0.width": 0, "branches[0].cells[2]/0.kernel": 0,
                                "branches[1]": 1, "branches[1]/1.cells[0].width": 0, "head.width": 0})
    wide = supernet.largest()
    before = {g: supernet((images, supernet.encode(g))).numpy() for g in (narrow, wide)}
    layer = supernet._slot_layers["main_0"][0]  # conv, widest 12 channels; the narrow network uses 8
    kernel = layer.conv.kernel.numpy()
    kernel[..., 8:] += 1.0  # only channels the narrow network masks out
    layer.conv.kernel.assign(kernel)
    mbconv = supernet._slot_layers["main_2"][0]  # kernel 5 shared; the narrow network uses its 3x3 centre
    depthwise = mbconv.depthwise.conv.kernel.numpy()
    depthwise[0] += 1.0
    mbconv.depthwise.conv.kernel.assign(depthwise)
    after = {g: supernet((images, supernet.encode(g))).numpy() for g in (narrow, wide)}
    np.testing.assert_array_equal(after[narrow], before[narrow])
    assert np.abs(after[wide] - before[wide]).max() > 1e-3


def test_training_updates_batch_norm_statistics_of_active_channels_only(images):
    supernet = Supernet(spaces.tiny(), num_classes=3, input_size=SIZE)
    narrow = supernet.smallest()  # main_0 uses 8 of 12 channels
    bn = supernet._slot_layers["main_0"][0].bn
    before = bn.moving_mean.numpy().copy()
    supernet((images, supernet.encode(narrow)), training=True)
    after = bn.moving_mean.numpy()
    assert np.all(after[:8] != before[:8]) and np.array_equal(after[8:], before[8:])


def test_space_that_cannot_be_a_supernet_is_refused():
    text = spaces.TINY.replace("- {op: skip}", "- {op: mbconv, width: 16, stride: 2}")
    with pytest.raises(SupernetError, match=r"tiny.yaml: branches\[0\].cells\[2\]: alternatives have different"):
        Supernet(SearchSpace.from_text(text, "tiny.yaml"), num_classes=3, input_size=SIZE)


def test_extract_refuses_a_genotype_outside_the_space(supernet):
    other = spaces.tiny().sample(np.random.default_rng(0))
    with pytest.raises(GenotypeError, match="not in the space"):
        supernet.extract(other)


def test_saves_and_loads(tmp_path, images):
    import keras

    supernet = Supernet(spaces.tiny(), num_classes=3, input_size=SIZE)
    arch = supernet.encode(supernet.largest())
    supernet.save(tmp_path / "supernet.keras")
    loaded = keras.saving.load_model(tmp_path / "supernet.keras")
    np.testing.assert_array_equal(loaded((images, arch)).numpy(), supernet((images, arch)).numpy())


LRASPP = """
name: lraspp
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: {choice: [8, 12]}, stride: 2}
      - {op: mbconv, width: 16, stride: 2, expansion: 2.0, se: true, act: hard_swish}
  - name: low
    source: {branch: main, cell: -1}
    cells:
      - {op: conv, width: {choice: [16, 24]}, stride: 2}
head: {op: lraspp, inputs: [{branch: main}, {branch: low}], width: {choice: [8, 16]}}
"""


@pytest.mark.parametrize("head", ["light", "mlp", "lraspp"])
def test_mixed_bfloat16_supernet_computes_in_bfloat16_with_float32_weights(head, images):
    """Every op and head of the schema under mixed_bfloat16 (issue 20): bfloat16 out, float32 weights, float32's
    answer."""
    import keras

    from mobileseg.training.train_config import dtype_policy

    keras.utils.set_random_seed(0)
    space = SearchSpace.from_text(LRASPP, "lraspp.yaml") if head == "lraspp" else spaces.all_ops(head)
    full = Supernet(space, 3, SIZE)
    with dtype_policy("mixed_bfloat16"):
        mixed = Supernet(space, 3, SIZE)
    mixed.set_weights(full.get_weights())
    assert {v.dtype for v in mixed.weights} == {"float32"}
    rng = np.random.default_rng(3)
    for genotype in [full.largest(), full.smallest(), *(full.sample(rng) for _ in range(6))]:
        arch = full.encode(genotype)
        want = full((images, arch), training=False).numpy()
        got = mixed((images, arch), training=False)
        assert got.dtype == tf.bfloat16
        got = got.numpy().astype("float32")
        assert np.isfinite(got).all()
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max() + 1e-3, genotype
    before = [v.numpy().copy() for v in mixed.non_trainable_weights]
    mixed((images, full.encode(full.largest())), training=True)  # batch statistics updated in float32
    after = [v.numpy() for v in mixed.non_trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in after)
