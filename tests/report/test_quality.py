"""The report's accuracy figures: both models of a run evaluated on the test split (every non-void pixel
counted once), sample predictions at each image's size, and the split chosen by the protocol."""

import numpy as np
import pytest

from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.sources import open_source
from mobileseg.report.quality import QualityError, evaluate_models, evaluation_split, open_models, predict_samples
from tests import tiny_segmenters
from tests.data.fake_layouts import make_folder


@pytest.fixture(scope="module")
def source():
    return open_source(tiny_segmenters.DATA)


def test_both_models_are_evaluated_on_every_counted_pixel_of_the_test_split(trained_run, source):
    models = open_models(trained_run)
    assert {label: model.backend for label, model in models.items()} == {"float": "keras", "int8": "litert"}
    results = evaluate_models(models, source, "test", progress=False)
    masks = [source.load_pair(pair)[1] for pair in source.pairs("test")]
    counted = sum(int((mask != IGNORE_INDEX).sum()) for mask in masks)
    for result in results.values():
        confusion = np.array(result["confusion_matrix"])
        assert confusion.sum() == counted and result["images"] == len(masks)
        truth = confusion.sum(axis=1)
        np.testing.assert_array_equal(truth, [sum(int((m == c).sum()) for m in masks) for c in range(len(truth))])
        union = truth + confusion.sum(axis=0) - np.diag(confusion)
        expected = {name: (np.diag(confusion)[c] / union[c] if union[c] else None)
                    for c, name in enumerate(source.class_names)}
        assert result["per_class_iou"] == pytest.approx(expected)


def test_samples_are_spread_over_the_split_and_predicted_at_full_size(trained_run, source):
    samples = predict_samples(open_models(trained_run), source, "test", 3)
    names = [pair.image.name for pair in source.pairs("test")]
    assert len(samples) == 3 and samples[0].name == names[0] and samples[-1].name == names[-1]
    for sample in samples:
        assert set(sample.predictions) == {"float", "int8"}
        for ids in sample.predictions.values():
            assert ids.shape == sample.truth.shape == sample.image.shape[:2] and ids.max() < source.num_classes
        same = np.mean(sample.predictions["float"] == sample.predictions["int8"])
        assert same > 0.8  # the int8 file is the same network


def test_the_split_is_test_else_val_and_a_damaged_model_is_named(tmp_path, source):
    assert evaluation_split(source) == "test"
    assert evaluation_split(open_source(f"folder:{make_folder(tmp_path / 'plants', split=True)}")) == "val"
    (tmp_path / "run" / "export").mkdir(parents=True)
    (tmp_path / "run" / "export" / "model_int8.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(QualityError, match="model_int8.tflite"):
        open_models(tmp_path / "run")
