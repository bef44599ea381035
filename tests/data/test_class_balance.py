"""Class balance of a training split: pixel frequencies counted from the masks, ENet's weights."""

import numpy as np
import pytest

from mobileseg.data.class_balance import ENET_C, class_weights, enet_weights, pixel_frequencies
from mobileseg.data.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(6, size=(24, 32))


def test_frequencies_count_every_labelled_pixel_of_the_masks(source):
    pairs = source.pairs("train")
    masks = [source.load_pair(pair)[1] for pair in pairs]
    labelled = np.concatenate([m[m < source.num_classes] for m in masks])
    expected = np.bincount(labelled, minlength=source.num_classes) / labelled.size
    np.testing.assert_allclose(pixel_frequencies(source, pairs), expected)


def test_enet_weights_fall_as_a_class_grows_and_stay_bounded():
    weights = enet_weights([0.0, 0.01, 0.1, 0.5, 1.0])
    assert list(weights) == sorted(weights, reverse=True)
    assert weights[0] == pytest.approx(1 / np.log(ENET_C)) and weights[-1] == pytest.approx(1 / np.log(1 + ENET_C))


def test_class_weights_by_kind(source):
    pairs = source.pairs("train")
    assert class_weights("none", source, pairs) is None
    weights = class_weights("enet", source, pairs)
    assert len(weights) == source.num_classes
    np.testing.assert_allclose(weights, enet_weights(pixel_frequencies(source, pairs)), atol=1e-4)
    with pytest.raises(ValueError, match="class_weight must be one of none, enet"):
        class_weights("median", source, pairs)
