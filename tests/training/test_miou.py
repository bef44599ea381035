"""mIoU: a hand-computed case, the ignore index, absent classes, and the Keras metric agreeing with numpy."""

import math

import keras
import numpy as np
import pytest

from mobileseg.training.miou import ConfusionMatrix, MeanIoU, confusion_matrix, miou, per_class_iou, pixel_accuracy

# 3 classes; 255 ignored. Pixel pairs (truth, prediction):
TRUTH = np.array([[0, 0, 0, 1], [1, 1, 2, 255]])
PRED = np.array([[0, 0, 1, 1], [1, 2, 2, 0]])
# confusion rows=truth: class0 -> [2, 1, 0]; class1 -> [0, 2, 1]; class2 -> [0, 0, 1]
# IoU0 = 2 / (2+1+0) = 2/3; IoU1 = 2 / (3 + 3 - 2) = 1/2; IoU2 = 1 / (1 + 2 - 1) = 1/2
# mIoU = (2/3 + 1/2 + 1/2) / 3 = 5/9; pixel accuracy = 5/7


def test_hand_computed_case():
    cm = ConfusionMatrix(3).update(TRUTH, PRED)
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert cm.per_class_iou().tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert cm.miou() == pytest.approx(5 / 9)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)


def test_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    cm = ConfusionMatrix(4).update(TRUTH, PRED)  # class 3 never occurs
    assert math.isnan(cm.per_class_iou()[3])
    assert cm.miou() == pytest.approx(5 / 9)
    assert cm.as_dict(["a", "b", "c", "d"])["per_class_iou"]["d"] is None
    wrong_only = ConfusionMatrix(2).update(np.array([0, 0]), np.array([0, 1]))  # class 1 only predicted: IoU 0
    assert wrong_only.per_class_iou().tolist() == [0.5, 0.0] and wrong_only.miou() == pytest.approx(0.25)


def test_empty_matrix_gives_zero_not_nan():
    cm = ConfusionMatrix(3)
    assert cm.miou() == 0.0 and cm.pixel_accuracy() == 0.0
    assert float(miou(np.zeros((2, 2)))) == 0.0 and float(pixel_accuracy(np.zeros((2, 2)))) == 0.0


def test_ignore_index_and_out_of_range_truth_are_not_counted():
    counts = keras.ops.convert_to_numpy(confusion_matrix([255, 7, 0, 1], [1, 1, 0, 0], 2))
    assert counts.tolist() == [[1, 0], [1, 0]]
    custom = keras.ops.convert_to_numpy(confusion_matrix([3, 0], [0, 0], 4, ignore_index=3))
    assert custom.sum() == 1


def test_logits_are_argmaxed_and_batches_accumulate():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 3))
    truth = rng.integers(0, 3, (2, 4, 5))
    one = ConfusionMatrix(3).update(truth, logits)
    two = ConfusionMatrix(3).update(truth[:1], logits[:1].argmax(-1)).update(truth[1:], logits[1:])
    assert np.array_equal(one.matrix, two.matrix) and one.matrix.sum() == 40
    two.reset()
    assert two.matrix.sum() == 0


def test_keras_metric_matches_numpy_in_a_compiled_model():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(6, 8, 8, 3)).astype("float32")
    truth = rng.integers(0, 4, (6, 8, 8))
    truth[:, :2] = 255
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
                  metrics=[MeanIoU(4)], jit_compile=False)  # fmt: skip
    result = model.evaluate(images, truth, batch_size=4, verbose=0, return_dict=True)["miou"]
    expected = ConfusionMatrix(4).update(truth, model.predict(images, verbose=0)).miou()
    assert result == pytest.approx(expected, abs=1e-6) and 0 < expected < 1


def test_metric_state_reset_and_config_round_trip():
    metric = MeanIoU(num_classes=3, ignore_index=9, name="val_miou")
    metric.update_state(TRUTH.clip(0, 2), PRED)
    assert float(metric.result()) > 0
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = MeanIoU.from_config(metric.get_config())
    assert (clone.num_classes, clone.ignore_index, clone.name) == (3, 9, "val_miou")
    assert keras.saving.get_registered_object("mobileseg>MeanIoU") is MeanIoU
    with pytest.raises(ValueError, match="sample weights"):
        metric.update_state(TRUTH, PRED, sample_weight=np.ones_like(TRUTH))


def test_functions_accept_tensors():
    cm = confusion_matrix(keras.ops.convert_to_tensor(TRUTH), keras.ops.convert_to_tensor(PRED), 3)
    assert float(miou(cm)) == pytest.approx(5 / 9)
    assert keras.ops.convert_to_numpy(per_class_iou(cm)).tolist() == pytest.approx([2 / 3, 0.5, 0.5])
