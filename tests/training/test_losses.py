"""OHEM cross-entropy against a numpy reference, the ignore index, resizing, distillation, weighting."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobileseg.training.losses import (
    DistillationKL,
    OhemCrossEntropy,
    SegmentationLoss,
    distillation_kl,
    ohem_cross_entropy,
)


def numpy_ohem(labels, logits, threshold, min_kept, ignore=255, weights=None):
    """mmsegmentation's OHEMPixelSampler + CE, written out: keep p < threshold and the min_kept hardest;
    with ``weights``, the kept pixels' mean weighted by their class's weight."""
    labels = labels.reshape(-1)
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = (labels != ignore) & (labels < logits.shape[-1])
    nll = -log_probs[np.arange(len(labels)), np.where(valid, labels, 0)]
    prob = np.exp(-nll)
    keep = valid.copy() if threshold is None else valid & (prob < threshold)
    if threshold is not None and min_kept:
        order = np.argsort(np.where(valid, prob, 2.0), kind="stable")[:min(min_kept, valid.sum())]
        keep[order] = True
    if weights is not None:
        pixel_weights = np.asarray(weights)[np.where(valid, labels, 0)][keep]
        return (nll[keep] * pixel_weights).sum() / pixel_weights.sum()
    return nll[keep].mean() if keep.any() else 0.0


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 6, 5, 4)).astype("float32")
    labels = rng.integers(0, 4, (2, 6, 5))
    labels[0, :2] = 255  # void rows
    labels[1, 0, 0] = 9  # out of range: not counted either
    return labels, logits


@pytest.mark.parametrize("threshold, min_kept", [(None, 0), (0.7, 0), (0.7, 5), (0.3, 20), (0.7, 1000)])
def test_ohem_matches_the_numpy_reference(batch, threshold, min_kept):
    labels, logits = batch
    ours = float(ohem_cross_entropy(labels, logits, threshold=threshold, min_kept=min_kept))
    # min_kept is per image: the reference keeps min_kept * batch pixels
    assert ours == pytest.approx(numpy_ohem(labels, logits, threshold, min_kept * 2), rel=1e-5)


def test_ohem_histogram_selection_keeps_at_most_one_bin_more_than_an_exact_sort():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (2, 40, 50, 5)).astype("float32")
    labels = rng.integers(0, 5, (2, 40, 50))
    labels[:, :5] = 255
    for min_kept in (100, 700, 1700):
        exact = numpy_ohem(labels, logits, 0.05, min_kept * 2)
        ours = float(ohem_cross_entropy(labels, logits, threshold=0.05, min_kept=min_kept))
        # the extra pixels are the easiest of the kept ones, within 1/1024 in probability of the k-th
        assert ours <= exact + 1e-6 and ours == pytest.approx(exact, rel=0.01)


def test_ohem_keeps_fewer_pixels_than_plain_cross_entropy_and_they_are_the_hard_ones(batch):
    labels, logits = batch
    plain = float(ohem_cross_entropy(labels, logits, threshold=None))
    hard = float(ohem_cross_entropy(labels, logits, threshold=0.3))
    assert hard > plain  # only confidently-wrong pixels are left: their mean loss is larger


def test_ignored_pixels_get_no_gradient_and_change_nothing(batch):
    labels, logits = batch
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = ohem_cross_entropy(labels, variable, threshold=None)
    grad = tape.gradient(loss, variable).numpy()
    assert np.all(grad[0, :2] == 0) and np.all(grad[1, 0, 0] == 0)
    assert np.any(grad[0, 2:] != 0)
    changed = logits.copy()
    changed[0, :2] += 100.0  # whatever the network says on void pixels
    assert float(ohem_cross_entropy(labels, changed, threshold=None)) == pytest.approx(
        float(ohem_cross_entropy(labels, logits, threshold=None)))


def test_nan_logits_give_a_nan_loss_not_an_error():
    logits = np.full((1, 4, 4, 3), np.nan, "float32")
    assert np.isnan(float(ohem_cross_entropy(np.zeros((1, 4, 4)), logits, threshold=0.7, min_kept=4)))


def test_all_void_batch_gives_zero_not_nan():
    labels = np.full((1, 4, 4), 255)
    logits = np.zeros((1, 4, 4, 3), "float32")
    assert float(ohem_cross_entropy(labels, logits, threshold=0.7, min_kept=10)) == 0.0


def test_loss_upsamples_low_resolution_logits_to_the_labels():
    labels = np.zeros((1, 16, 16), "int32")
    labels[:, :, 8:] = 1
    logits = np.zeros((1, 2, 2, 2), "float32")
    logits[:, :, 0, 0] = logits[:, :, 1, 1] = 8.0  # left half says class 0, right half class 1
    loss = OhemCrossEntropy(threshold=None)
    assert float(loss(labels, logits)) < 0.1
    assert float(loss(1 - labels, logits)) > 5.0


@pytest.mark.parametrize("threshold, min_kept", [(None, 0), (0.7, 5)])
def test_class_weights_weight_the_mean_of_the_kept_pixels(batch, threshold, min_kept):
    labels, logits = batch
    weights = [1.0, 4.0, 0.5, 30.0]
    weighted = float(ohem_cross_entropy(labels, logits, threshold, min_kept, class_weights=weights))
    assert weighted == pytest.approx(numpy_ohem(labels, logits, threshold, min_kept, weights=weights), rel=1e-5)
    equal = float(ohem_cross_entropy(labels, logits, threshold, min_kept, class_weights=[2.0] * 4))
    assert equal == pytest.approx(float(ohem_cross_entropy(labels, logits, threshold, min_kept)), rel=1e-5)
    only_class_1 = float(ohem_cross_entropy(labels, logits, None, class_weights=[0.0, 1.0, 0.0, 0.0]))
    assert only_class_1 == pytest.approx(numpy_ohem(np.where(labels == 1, 1, 255), logits, None, 0), rel=1e-5)
    with pytest.raises(ValueError, match="3 class weights for 4 classes"):
        ohem_cross_entropy(labels, logits, class_weights=[1.0] * 3)


def test_ohem_loss_survives_a_keras_config_round_trip():
    loss = OhemCrossEntropy(threshold=0.6, min_kept=123, stride=2, class_weights=[1, 2.5])
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (again.threshold, again.min_kept, again.ignore_index, again.stride) == (0.6, 123, 255, 2)
    assert again.class_weights == (1.0, 2.5)
    with pytest.raises(ValueError, match="class weights must be >= 0"):
        OhemCrossEntropy(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="threshold"):
        OhemCrossEntropy(threshold=1.5)
    with pytest.raises(ValueError, match="stride"):
        OhemCrossEntropy(stride=0)


@pytest.mark.parametrize("stride", [2, 4])
def test_strided_loss_compares_every_stride_th_label_with_logits_resized_to_that_grid(stride):
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (2, 4, 6, 3)).astype("float32")
    labels = rng.integers(0, 3, (2, 32, 48))
    labels[0, :8] = 255
    strided = float(OhemCrossEntropy(threshold=0.7, min_kept=64, stride=stride)(labels, logits))
    grid = labels[:, stride // 2::stride, stride // 2::stride]
    resized = tf.image.resize(logits, grid.shape[1:], method="bilinear").numpy()
    assert strided == pytest.approx(numpy_ohem(grid, resized, 0.7, 2 * 64 // stride**2), rel=1e-5)
    full = float(OhemCrossEntropy(threshold=None)(labels, logits))
    assert float(OhemCrossEntropy(threshold=None, stride=stride)(labels, logits)) == pytest.approx(full, rel=0.05)


def test_distillation_is_the_kl_from_teacher_to_student_times_t_squared():
    rng = np.random.default_rng(1)
    student = rng.normal(size=(2, 3, 3, 5)).astype("float32")
    teacher = rng.normal(size=(2, 3, 3, 5)).astype("float32")
    for t in (1.0, 4.0):
        p = np.exp(teacher / t) / np.exp(teacher / t).sum(-1, keepdims=True)
        q = np.exp(student / t) / np.exp(student / t).sum(-1, keepdims=True)
        expected = (p * (np.log(p) - np.log(q))).sum(-1).mean() * t * t
        assert float(distillation_kl(student, teacher, t)) == pytest.approx(expected, rel=1e-5)
        assert float(DistillationKL(temperature=t)(teacher, student)) == pytest.approx(expected, rel=1e-5)


def test_distillation_gradient_reaches_the_student_only():
    student = tf.Variable(np.random.default_rng(2).normal(size=(1, 2, 2, 3)).astype("float32"))
    teacher = tf.Variable(np.zeros((1, 4, 4, 3), "float32"))  # another resolution: resized
    with tf.GradientTape() as tape:
        loss = distillation_kl(student, teacher, 2.0)
    grad_student, grad_teacher = tape.gradient(loss, [student, teacher])
    assert np.abs(grad_student.numpy()).sum() > 0
    assert grad_teacher is None


def test_segmentation_loss_weights_aux_heads_and_distillation(batch):
    labels, logits = batch
    aux = logits[:, ::2, ::2] * 0.5
    teacher = np.roll(logits, 1, axis=-1)
    ce = OhemCrossEntropy(threshold=None)
    objective = SegmentationLoss(ce, aux_weight=0.4, distillation=DistillationKL(2.0), distill_weight=0.5)
    terms = objective(labels, [logits, aux, aux], teacher_logits=teacher)
    main, one_aux = float(ce(labels, logits)), float(ce(labels, aux))
    distill = float(distillation_kl(logits, teacher, 2.0))
    assert float(terms.main) == pytest.approx(main, rel=1e-6)
    assert float(terms.aux) == pytest.approx(2 * one_aux, rel=1e-6)
    assert float(terms.distill) == pytest.approx(distill, rel=1e-6)
    assert float(terms.total) == pytest.approx(main + 0.4 * 2 * one_aux + 0.5 * distill, rel=1e-6)
    alone = objective(labels, logits)  # one output, no teacher
    assert float(alone.total) == pytest.approx(main, rel=1e-6) and float(alone.aux) == 0.0
