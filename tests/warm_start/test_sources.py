"""Another run's ``.keras`` / ``.weights.h5`` and a trained supernet as first weights."""

import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.data.sources import open_source
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.supernet.trainer import SupernetTrainer, load_supernet_weights
from mobileseg.arch.space import SearchSpace
from mobileseg.warm_start.initialize import initialize, parse_init
from mobileseg.warm_start.matching import InitError
from tests.supernet import spaces

ARCH = """
name: tiny_init
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 12, stride: 2, se: true},
            {op: mbconv, width: 16, stride: 2}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""
LONGER = ARCH.replace("{op: mbconv, width: 16, stride: 2}]",
                      "{op: mbconv, width: 16, stride: 2}, {op: conv, width: 16}]")  # one cell more
SIZE = (32, 32)


def randomize(model, seed):
    """Weights and BN statistics all non-trivial, so that a weight not copied shows in the outputs."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        low = 0.5 if variable.path.endswith("moving_variance") else -0.5
        variable.assign(rng.uniform(low, low + 1.0, tuple(variable.shape)).astype("float32"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 'trained' model of ARCH saved as .keras and .weights.h5, and images."""
    folder = tmp_path_factory.mktemp("init")
    model = builder.build_model(schema_io.loads(ARCH), 5, SIZE)
    randomize(model, 1)
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    images = np.random.default_rng(2).uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    return folder, model, images


@pytest.mark.parametrize("name", ["model.keras", "model.weights.h5"])
def test_the_same_network_from_a_file_gives_the_same_outputs(trained, name):
    folder, source, images = trained
    genotype = schema_io.loads(ARCH)
    model = builder.build_model(genotype, 5, SIZE)
    assert not np.allclose(model(images), source(images), atol=1e-3)
    report = initialize(model, parse_init(str(folder / name)), genotype)
    assert report.shape_mismatch == {} and report.missing == [] and report.unused == []
    assert len(report.matched) == len(model.weights) and report.matched_params == report.total_params
    np.testing.assert_allclose(model(images), source(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["model.keras", "model.weights.h5"])
def test_another_network_matches_in_part_and_says_what_did_not(trained, name):
    folder, source, _ = trained
    genotype = schema_io.loads(LONGER)
    model = builder.build_model(genotype, 7, SIZE)  # one more cell, other classes
    report = initialize(model, parse_init(str(folder / name)), genotype)
    layers = report.layers()
    assert {"main_0_conv", "main_1_mbconv", "main_2_mbconv"} <= set(layers["matched"])
    assert layers["partly_matched"] == ["head"]  # its classifier is 7 classes wide, the file's 5
    assert all(path.startswith("head/") for path in report.shape_mismatch)
    if name == "model.keras":  # named layers: the new cell is missing
        assert layers["missing"] == ["main_3_conv"]
    np.testing.assert_array_equal(model.get_layer("main_1_mbconv").se.reduce.kernel.numpy(),
                                  source.get_layer("main_1_mbconv").se.reduce.kernel.numpy())


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    """A run folder whose supernet/ was trained one step on synthetic data, from a space file."""
    folder = tmp_path_factory.mktemp("supernet_run")
    space_file = folder / "tiny_space.yaml"
    space_file.write_text(spaces.TINY)
    data = open_source("synthetic:8,size=32x32")
    supernet = Supernet(SearchSpace.load(space_file), data.num_classes, SIZE)
    config = SupernetTrainConfig(epochs=1, batch_size=4, steps_per_epoch=1, warmup_epochs=0.0, verbose=False)
    SupernetTrainer(supernet, config).fit(data, folder, np.random.default_rng(0))
    return folder, data.num_classes


def test_supernet_init_gives_the_supernets_own_outputs(supernet_dir):
    folder, classes = supernet_dir
    supernet = Supernet(SearchSpace.load(folder / "tiny_space.yaml"), classes, SIZE)
    load_supernet_weights(supernet, folder)
    genotype = supernet.sample(np.random.default_rng(3))
    while genotype == supernet.largest():
        genotype = supernet.sample(np.random.default_rng(4))
    model = builder.build_model(genotype, classes, SIZE)
    report = initialize(model, parse_init(f"supernet:{folder}"), genotype)
    assert report.missing == [] and report.shape_mismatch == {} and report.unused == []
    assert "trained 1 of 1 epochs" in report.notes[0]
    images = np.random.default_rng(5).uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    expected = supernet((images, supernet.encode(genotype)), training=False).numpy()
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_a_network_outside_the_supernets_space_is_refused(supernet_dir):
    folder, classes = supernet_dir
    genotype = schema_io.loads(ARCH)
    with pytest.raises(InitError, match=r"tiny_init is not a network of the supernet's space .*tiny_space\.yaml"):
        initialize(builder.build_model(genotype, classes, SIZE), parse_init(f"supernet:{folder}"), genotype)
