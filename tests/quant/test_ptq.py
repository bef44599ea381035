import numpy as np
import pytest

from mobileseg.data.synthetic import SyntheticSource
from mobileseg.quant.ptq import representative_dataset, representative_images


def test_representative_images_come_from_the_training_split_seeded_and_resized():
    source = SyntheticSource(40, size=(48, 64))
    first = representative_images(source, (32, 40), num_samples=5, seed=1)
    again = representative_images(source, (32, 40), num_samples=5, seed=1)
    other = representative_images(source, (32, 40), num_samples=5, seed=2)
    assert len(first) == 5 and all(image.shape == (1, 32, 40, 3) for image in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    train = {image.tobytes() for image in representative_images(source, (32, 40), 100)}
    val = {image.tobytes() for image in representative_images(source, (32, 40), 100, split="val")}
    assert len(train) == len(source.pairs("train")) and not train & val


def test_representative_dataset_yields_one_list_per_image():
    images = [np.full((1, 2, 2, 3), v, np.float32) for v in (1.0, 2.0)]
    assert [float(sample[0].max()) for sample in representative_dataset(images)()] == [1.0, 2.0]


def test_zero_samples_are_refused():
    with pytest.raises(ValueError, match="num_samples must be at least 1"):
        representative_images(SyntheticSource(10), (8, 8), num_samples=0)
