"""Copying weights by name and shape, and the report of what matched."""

import json

import keras
import numpy as np

from mobileseg.warm_start.matching import copy_matching


def two_layers(width: int, classes: int) -> keras.Model:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(width, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, name="classifier")(hidden))


def test_a_partial_match_copies_what_agrees_and_reports_the_rest():
    keras.utils.set_random_seed(0)
    source_model, model = two_layers(4, 3), two_layers(4, 5)
    source = {v.path: v.numpy() for v in source_model.weights}
    source["extra/kernel"] = np.zeros((2, 2), "float32")
    before = model.get_layer("classifier").kernel.numpy().copy()
    report = copy_matching(model, source, "other.keras", ["a note"])
    assert report.matched == ["hidden/kernel", "hidden/bias"]
    assert report.shape_mismatch == {"classifier/kernel": [[4, 5], [4, 3]], "classifier/bias": [[5], [3]]}
    assert report.missing == [] and report.unused == ["extra/kernel"]
    assert (report.matched_params, report.total_params) == (6 * 4 + 4, 6 * 4 + 4 + 4 * 5 + 5)
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.numpy(), source["hidden/kernel"])
    np.testing.assert_array_equal(model.get_layer("classifier").kernel.numpy(), before)  # left as initialised
    assert report.layers() == {"matched": ["hidden"], "partly_matched": [], "shape_mismatch": ["classifier"],
                               "missing": [], "unused": ["extra"]}
    summary = report.summary()
    assert "init from other.keras: 2 of 4 weights matched by name and shape (28 of 53 parameters)" in summary
    assert "shape mismatch (1 layers): classifier" in summary and "unused (1 layers): extra" in summary
    assert "classifier/kernel: model (4, 5), source (4, 3)" in summary and "a note" in summary
    assert json.loads(report.to_json())["layers"]["shape_mismatch"] == ["classifier"]


def test_a_layer_with_a_missing_weight_is_partly_matched():
    model = two_layers(4, 3)
    report = copy_matching(model, {"hidden/kernel": np.ones((6, 4), "float32")}, "x")
    assert report.missing == ["hidden/bias", "classifier/kernel", "classifier/bias"]
    assert report.layers()["partly_matched"] == ["hidden"] and report.layers()["missing"] == ["classifier"]
