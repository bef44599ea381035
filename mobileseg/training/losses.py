"""Segmentation losses: OHEM cross-entropy with an ignore index, auxiliary heads, distillation.

- `ohem_cross_entropy` / `OhemCrossEntropy`: pixel-wise online hard example mining
  (Shrivastava et al., "Training Region-based Object Detectors with Online Hard Example
  Mining", CVPR 2016, in the pixel form of PaddleSeg's ``OhemCrossEntropyLoss`` and
  mmsegmentation's ``OHEMPixelSampler`` used by BiSeNet, PP-LiteSeg and the SeaFormer
  configs): the cross-entropy is averaged over the valid pixels whose probability of the
  true class is below ``threshold`` (0.7), and always over at least the ``min_kept``
  hardest pixels per image. ``threshold=None`` is the plain cross-entropy over valid pixels.
  With ``class_weights`` (e.g. ENet's, `mobileseg.data.class_balance`) the mean is weighted by the
  weight of each pixel's true class, as in PaddleSeg's and PyTorch's weighted cross-entropy.
- `distillation_kl` / `DistillationKL`: Hinton et al.'s knowledge distillation
  ("Distilling the Knowledge in a Neural Network", 2015) per pixel: the KL divergence of
  the student's softened class distribution from the teacher's (the teacher's distribution
  is the target: ``KL(p_teacher || p_student)``), at temperature T and scaled by T² so its
  gradients keep their size as T changes.
- `SegmentationLoss`: the training objective: main loss + ``aux_weight`` × each auxiliary
  head's loss (PSPNet's deep supervision, 0.4 as in mmsegmentation) + ``distill_weight`` ×
  the distillation term.

Logits come at a fraction of the image size (1/8 for most heads); the losses resize them
bilinearly, in the graph, to the label map's size before comparing (teacher logits are
resized to the student's). Labels equal to ``ignore_index`` (255) or outside
0..num_classes-1 count nowhere.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from mobileseg.data.labels import IGNORE_INDEX


def _spatial_size(tensor):
    """(H, W) of a [B, H, W, ...] tensor: Python ints when static, else a tensor."""
    static = tuple(tensor.shape[1:3])
    return static if all(isinstance(d, int) for d in static) else ops.shape(tensor)[1:3]


def resize_logits(logits, size):
    """Bilinearly resize logits [B, h, w, C] to ``size`` (height, width); a no-op when equal.

    Example:
        >>> import numpy as np
        >>> tuple(resize_logits(np.zeros((2, 4, 6, 3), "float32"), (32, 48)).shape)
        (2, 32, 48, 3)
    """
    if tuple(logits.shape[1:3]) == tuple(size):
        return logits
    return ops.image.resize(logits, size, interpolation="bilinear")


OHEM_BINS = 1024
"""Resolution of OHEM's k-th probability: it is the upper edge of the histogram bin holding it."""


def ohem_cross_entropy(labels, logits, threshold: float | None = 0.7, min_kept: int = 0,
                       ignore_index: int = IGNORE_INDEX, class_weights=None):
    """Cross-entropy averaged over the hard pixels (see the module docstring).

    A valid pixel is kept when the probability of its true class is below ``threshold``
    or when it is among the ``min_kept`` × batch lowest such probabilities (the hardest);
    with fewer valid pixels than that, every valid pixel is kept.

    Cost: one fused ``SparseSoftmaxCrossEntropyWithLogits`` (its gradient is computed with
    it) and, for the k-th lowest probability, a histogram of ``OHEM_BINS`` bins instead of a
    sort of every pixel: the pixels of the bin holding the k-th are all kept, so at most
    one bin's width (1/1024 in probability) more pixels than an exact sort would keep. In a
    360x480 batch of 8 the sort and the gather's gradient took more than the network's
    own backward pass.

    Args:
        labels: integer class ids [B, H, W]; `ignore_index` and ids outside
            0..C-1 are not counted.
        logits: [B, H, W, C], the same size as `labels`.
        threshold: probability below which a pixel is hard; None keeps every valid
            pixel (plain cross-entropy).
        min_kept: pixels per image always kept (the hardest ones).
        ignore_index: the label of pixels that do not count.
        class_weights: one weight per class, or None: the kept pixels' mean is weighted by their
            true class's weight (the selection of hard pixels is not).

    Returns:
        float32 scalar: the (weighted) mean cross-entropy of the kept pixels (0 when none).

    Example:
        >>> import numpy as np
        >>> logits = np.log(np.array([[[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.5, 0.5]]]], "float32"))
        >>> labels = np.array([[[0, 0, 1, 255]]])
        >>> round(float(ohem_cross_entropy(labels, logits, threshold=None)), 4)  # mean of -ln .9, -ln .5, -ln .8
        0.3406
        >>> round(float(ohem_cross_entropy(labels, logits, threshold=0.7)), 4)  # only p=0.5 is below 0.7
        0.6931
        >>> round(float(ohem_cross_entropy(labels, logits, threshold=0.7, min_kept=2)), 4)  # and p=0.8
        0.4581
        >>> weighted = ohem_cross_entropy(labels, logits, threshold=None, class_weights=[1.0, 3.0])
        >>> round(float(weighted), 4)  # (-ln .9 - ln .5 - 3 ln .8) / 5
        0.2936
    """
    num_classes = int(logits.shape[-1])
    batch = tf.shape(labels)[0]
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1, num_classes])
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_index)
    pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.where(valid, labels, 0), logits)
    if threshold is None:
        keep = valid
    else:
        prob = tf.exp(-tf.stop_gradient(pixel_loss))
        keep = valid & (prob < threshold)
        if min_kept > 0:
            num_valid = tf.reduce_sum(tf.cast(valid, tf.int32))
            wanted = tf.minimum(batch * min_kept, num_valid)
            # Invalid pixels count in the last bin, which is reached only when every valid pixel is wanted;
            # so do NaN probabilities (a diverged step, whose NaN loss the trainer's guard then reports).
            counts = tf.histogram_fixed_width(tf.where(valid & tf.math.is_finite(prob), prob, 1.0), [0.0, 1.0],
                                              nbins=OHEM_BINS)
            kth_bin = tf.argmax(tf.cast(tf.cumsum(counts) >= tf.maximum(wanted, 1), tf.int32))
            kth = tf.cast(kth_bin + 1, tf.float32) / OHEM_BINS
            keep = keep | (valid & (prob <= kth) & (wanted > 0))
    keep = tf.cast(keep, tf.float32)
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes")
        keep = keep * tf.gather(tf.constant(class_weights, tf.float32), tf.where(valid, labels, 0))
        return tf.reduce_sum(pixel_loss * keep) / tf.maximum(tf.reduce_sum(keep), 1e-12)
    return tf.reduce_sum(pixel_loss * keep) / tf.maximum(tf.reduce_sum(keep), 1.0)


def distillation_kl(student_logits, teacher_logits, temperature: float = 1.0):
    """Pixel-mean ``KL(softmax(teacher / T) || softmax(student / T)) * T²``.

    Args:
        student_logits: [B, h, w, C].
        teacher_logits: [B, h', w', C]; resized bilinearly to (h, w) when different.
        temperature: T > 0; higher T softens both distributions.

    Returns:
        float32 scalar; 0 when the two distributions agree. No gradient reaches the teacher.

    Example:
        >>> import numpy as np
        >>> same = np.array([[[[2.0, 0.0, -1.0]]]], "float32")
        >>> float(distillation_kl(same, same))
        0.0
        >>> round(float(distillation_kl(same, np.zeros((1, 2, 2, 3), "float32"))), 4)  # vs uniform
        0.7379
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    teacher_logits = ops.stop_gradient(resize_logits(ops.cast(teacher_logits, "float32"),
                                                     _spatial_size(student_logits)))
    student_log_probs = ops.log_softmax(ops.cast(student_logits, "float32") / temperature, axis=-1)
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    return ops.mean(kl) * (temperature * temperature)


@keras.saving.register_keras_serializable(package="mobileseg")
class OhemCrossEntropy(keras.losses.Loss):
    """OHEM cross-entropy of logits at any resolution against full-size labels.

    The logits are resized bilinearly to the labels' size, then `ohem_cross_entropy`.
    With ``stride`` s > 1 the loss looks at every s-th pixel of the label map in each
    direction (from pixel s // 2): the logits are resized to that grid (whose pixel
    centres lie half a label pixel from the chosen labels') and ``min_kept`` is divided
    by s². The mean over a regular quarter (s = 2) of the pixels estimates the full mean,
    and the resize, softmax and selection cost s² times less.

    Args:
        threshold: probability of the true class below which a pixel is hard (0.7, as
            PaddleSeg and mmsegmentation); None: plain cross-entropy over valid pixels.
        min_kept: pixels per full-size image always kept, the hardest first (PaddleSeg's
            default is 100000 for 1024x512 Cityscapes crops; `mobileseg.train` defaults to
            a quarter of the crop).
        ignore_index: the label that does not count.
        stride: compare every ``stride``-th pixel in each direction (1: every pixel).
        class_weights: one loss weight per class (`ohem_cross_entropy`), or None.
        name, reduction, dtype: as `keras.losses.Loss` (the value is already a mean).

    Example:
        >>> import numpy as np
        >>> loss = OhemCrossEntropy(threshold=None)
        >>> labels = np.zeros((1, 8, 8), "int32")
        >>> round(float(loss(labels, np.zeros((1, 2, 2, 4), "float32"))), 4)  # uniform over 4 classes: ln 4
        1.3863
        >>> round(float(OhemCrossEntropy(threshold=None, stride=2)(labels, np.zeros((1, 2, 2, 4), "float32"))), 4)
        1.3863
        >>> OhemCrossEntropy.from_config(loss.get_config()).threshold is None
        True
    """

    def __init__(self, threshold: float | None = 0.7, min_kept: int = 0, ignore_index: int = IGNORE_INDEX,
                 stride: int = 1, class_weights=None, name: str = "ohem_cross_entropy",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"OHEM threshold must be in (0, 1] or None, got {threshold}")
        if min_kept < 0:
            raise ValueError(f"min_kept must be >= 0, got {min_kept}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.threshold = None if threshold is None else float(threshold)
        self.min_kept = int(min_kept)
        self.ignore_index = int(ignore_index)
        self.stride = stride
        self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        if self.class_weights is not None and not all(w >= 0 for w in self.class_weights):
            raise ValueError(f"class weights must be >= 0, got {self.class_weights}")

    def call(self, y_true, y_pred):
        if self.stride > 1:
            y_true = y_true[:, self.stride // 2::self.stride, self.stride // 2::self.stride]
        logits = resize_logits(y_pred, _spatial_size(y_true))
        min_kept = self.min_kept // (self.stride * self.stride)
        return ohem_cross_entropy(y_true, logits, self.threshold, min_kept, self.ignore_index, self.class_weights)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "min_kept": self.min_kept,
                "ignore_index": self.ignore_index, "stride": self.stride,
                "class_weights": None if self.class_weights is None else list(self.class_weights)}


@keras.saving.register_keras_serializable(package="mobileseg")
class DistillationKL(keras.losses.Loss):
    """`distillation_kl` as a Keras loss: ``y_true`` is the teacher's logits, ``y_pred`` the student's.

    Args:
        temperature: T > 0.
        name, reduction, dtype: as `keras.losses.Loss`.

    Example:
        >>> import numpy as np
        >>> student = np.array([[[[1.0, 0.0]]]], "float32")
        >>> float(DistillationKL(temperature=2.0)(student, student))
        0.0
    """

    def __init__(self, temperature: float = 1.0, name: str = "distillation_kl",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        return distillation_kl(y_pred, y_true, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@dataclasses.dataclass(frozen=True)
class LossTerms:
    """The parts of one `SegmentationLoss` evaluation (float32 scalars).

    Attributes:
        total: what is minimised: main + aux_weight * aux + distill_weight * distill.
        main: the main head's loss.
        aux: the sum of the auxiliary heads' losses (0 without any).
        distill: the distillation term (0 without a teacher).
    """

    total: object
    main: object
    aux: object
    distill: object


class SegmentationLoss:
    """The training objective of a segmentation network with optional auxiliary heads and teacher.

    Args:
        segmentation: the loss of each head against the labels (e.g. `OhemCrossEntropy`).
        aux_weight: weight of each auxiliary head's loss (PSPNet / mmsegmentation: 0.4).
        distillation: the loss between student and teacher logits (e.g. `DistillationKL`),
            or None.
        distill_weight: weight of the distillation term.

    Example:
        >>> import numpy as np
        >>> loss = SegmentationLoss(OhemCrossEntropy(threshold=None), aux_weight=0.5)
        >>> labels = np.zeros((1, 8, 8), "int32")
        >>> main, aux = np.zeros((1, 2, 2, 4), "float32"), np.zeros((1, 1, 1, 4), "float32")
        >>> terms = loss(labels, [main, aux])
        >>> round(float(terms.main), 4), round(float(terms.aux), 4), round(float(terms.total), 4)
        (1.3863, 1.3863, 2.0794)
    """

    def __init__(self, segmentation: keras.losses.Loss, aux_weight: float = 0.4,
                 distillation: keras.losses.Loss | None = None, distill_weight: float = 1.0):
        if aux_weight < 0 or distill_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got aux {aux_weight}, distill {distill_weight}")
        self.segmentation = segmentation
        self.aux_weight = float(aux_weight)
        self.distillation = distillation
        self.distill_weight = float(distill_weight)

    def __call__(self, labels, outputs, teacher_logits=None) -> LossTerms:
        """Loss terms of one batch.

        Args:
            labels: [B, H, W] class ids.
            outputs: the main logits, or a list of them followed by auxiliary logits.
            teacher_logits: the teacher's logits for the same images, or None.
        """
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        main = self.segmentation(labels, outputs[0])
        zero = ops.zeros((), "float32")
        aux = sum((self.segmentation(labels, logits) for logits in outputs[1:]), zero)
        distill = zero
        if teacher_logits is not None:
            if self.distillation is None:
                raise ValueError("teacher logits given but this SegmentationLoss has no distillation loss")
            distill = self.distillation(teacher_logits, outputs[0])
        total = main + self.aux_weight * aux + self.distill_weight * distill
        return LossTerms(total=total, main=main, aux=aux, distill=distill)
