import dataclasses

import numpy as np
import pytest
from keras import ops

from mobileseg.arch.schema_io import GenotypeError
from mobileseg.data.sources import open_source
from mobileseg.supernet.accuracy import SupernetAccuracyModel
from mobileseg.supernet.model import Supernet
from mobileseg.search.objectives import AccuracyModel
from tests.supernet import spaces

SIZE = (32, 32)


@pytest.fixture(scope="module")
def proxy():
    data = open_source("synthetic:16,size=48x64")
    supernet = Supernet(spaces.tiny(), data.num_classes, SIZE)
    return SupernetAccuracyModel(supernet, data, data, SIZE, calib_batches=2, batch_size=4, max_val_images=2)


def test_miou_of_genotypes(proxy):
    supernet = proxy.supernet
    rng = np.random.default_rng(0)
    genotypes = [supernet.largest(), supernet.smallest(), supernet.sample(rng), supernet.largest()]
    values = proxy.miou(genotypes)
    assert isinstance(proxy, AccuracyModel)
    assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values)
    assert values[0] == values[3]  # recalibrated from scratch each time: nothing else carries over
    assert len(proxy.seconds) == 4


def test_recalibration_recomputes_the_statistics_of_the_active_channels(proxy):
    supernet = proxy.supernet
    genotype = supernet.smallest()  # main_0 runs 8 of its 12 channels
    bn = supernet._slot_layers["main_0"][0].bn
    bn.moving_mean.assign(np.full(12, 5.0, "float32"))
    proxy._calibration, saved = proxy._calibration[:1], proxy._calibration
    try:
        proxy.recalibrate(supernet.encode(genotype))
    finally:
        proxy._calibration = saved
    conv = supernet._slot_layers["main_0"][0].conv
    expected = ops.mean(conv(supernet.normalize(saved[0])), axis=(0, 1, 2)).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy()[:8], expected[:8], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(bn.moving_mean.numpy()[8:], 5.0)


def test_genotype_outside_the_space_is_refused(proxy):
    other = spaces.demo().sample(np.random.default_rng(0))
    with pytest.raises(GenotypeError, match="not in the space tiny.yaml"):
        proxy.miou([proxy.supernet.largest(), other])
    renamed = dataclasses.replace(proxy.supernet.largest(), name="anything")
    assert 0.0 <= proxy.miou([renamed])[0] <= 1.0


def test_input_size_must_be_the_supernets(proxy):
    data = open_source("synthetic:16,size=48x64")
    with pytest.raises(ValueError, match=r"input_size \(64, 64\) differs from the supernet's \(32, 32\)"):
        SupernetAccuracyModel(proxy.supernet, data, data, (64, 64))


def test_extracted_network_scores_like_the_supernet(proxy):
    supernet = proxy.supernet
    genotype = supernet.sample(np.random.default_rng(3))
    arch = supernet.encode(genotype)
    proxy.recalibrate(arch)
    assert proxy.val_images == 2
    assert proxy.score_model(supernet.extract(genotype)) == pytest.approx(proxy.score(arch), abs=1e-6)
