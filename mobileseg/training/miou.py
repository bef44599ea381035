"""Mean intersection-over-union, from one confusion matrix implementation.

`confusion_matrix` counts (ground truth, prediction) pairs with `keras.ops`, so the same
code runs eagerly on numpy arrays (`ConfusionMatrix`, for evaluation scripts) and inside
a compiled `fit` step (`MeanIoU`, a `keras.metrics.Metric`). `per_class_iou`, `miou` and
`pixel_accuracy` read any confusion matrix.

Conventions (those of the Cityscapes / mmsegmentation evaluation):

- Pixels whose ground truth is the ignore index (255), or any value outside
  0..num_classes-1, are not counted at all.
- IoU of class c = TP / (TP + FP + FN), accumulated over the whole split (not averaged
  per image).
- A class absent from both the ground truth and the predictions of everything counted
  has no IoU (NaN in `per_class_iou`) and is left out of the mean. A class present in
  only one of them has IoU 0 and counts.
- With nothing counted yet, `miou` and `pixel_accuracy` are 0.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mobileseg.data.labels import IGNORE_INDEX


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int = IGNORE_INDEX):
    """Count pixels per (ground-truth class, predicted class).

    Args:
        y_true: integer label map(s), any shape; `ignore_index` and values outside
            0..num_classes-1 are skipped.
        y_pred: predicted class ids, same number of elements (argmax the logits first).
        num_classes: C.
        ignore_index: the label that is not counted.

    Returns:
        int32 tensor [C, C]: row = ground truth, column = prediction.

    Example:
        >>> cm = confusion_matrix(np.array([0, 0, 1, 255]), np.array([0, 1, 1, 0]), 2)
        >>> ops.convert_to_numpy(cm).tolist()
        [[1, 1], [0, 1]]
    """
    y_true = ops.reshape(ops.cast(y_true, "int32"), [-1])
    y_pred = ops.reshape(ops.cast(y_pred, "int32"), [-1])
    valid = (y_true >= 0) & (y_true < num_classes) & (y_true != ignore_index)
    valid = valid & (y_pred >= 0) & (y_pred < num_classes)
    cells = num_classes * num_classes
    index = ops.where(valid, y_true * num_classes + y_pred, cells)  # invalid pixels -> one extra bin
    counts = ops.bincount(index, minlength=cells + 1)[:cells]
    return ops.reshape(ops.cast(counts, "int32"), [num_classes, num_classes])


def _union_and_hits(confusion):
    cm = ops.cast(confusion, "float64")
    hits = ops.diagonal(cm)
    union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - hits
    return union, hits


def per_class_iou(confusion):
    """IoU of each class; NaN for a class absent from both ground truth and prediction.

    Args:
        confusion: [C, C] counts (rows ground truth, columns prediction).

    Returns:
        float64 tensor [C].

    Example:
        >>> ops.convert_to_numpy(per_class_iou(np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]]))).round(3).tolist()
        [0.6, 0.333, nan]
    """
    union, hits = _union_and_hits(confusion)
    return ops.where(union > 0, hits / ops.maximum(union, 1.0), float("nan"))


def miou(confusion):
    """Mean IoU over the classes present in ground truth or prediction (0 when none).

    Args:
        confusion: [C, C] counts.

    Returns:
        float64 scalar tensor.

    Example:
        >>> round(float(miou(np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]]))), 4)  # (0.6 + 1/3) / 2
        0.4667
    """
    union, hits = _union_and_hits(confusion)
    present = ops.cast(union > 0, "float64")
    iou = hits / ops.maximum(union, 1.0)
    return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)


def pixel_accuracy(confusion):
    """Fraction of counted pixels predicted correctly (0 when none).

    Args:
        confusion: [C, C] counts.

    Example:
        >>> float(pixel_accuracy(np.array([[3, 1], [1, 1]])))
        0.6666666666666666
    """
    cm = ops.cast(confusion, "float64")
    return ops.trace(cm) / ops.maximum(ops.sum(cm), 1.0)


def _labels(y_true, y_pred):
    """Ground truth [..., H, W] and predicted ids; logits (one more axis) are argmaxed."""
    if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if len(y_pred.shape) == len(y_true.shape) + 1:
        y_pred = ops.argmax(y_pred, axis=-1)
    return y_true, y_pred


class ConfusionMatrix:
    """Accumulates a confusion matrix over a split in numpy, for evaluation scripts.

    Args:
        num_classes: C.
        ignore_index: the ground-truth label that is not counted.

    Attributes:
        matrix: int64 [C, C], rows ground truth, columns prediction.

    Example:
        >>> cm = ConfusionMatrix(3)
        >>> _ = cm.update(np.array([[0, 0], [1, 255]]), np.array([[0, 1], [1, 2]]))
        >>> _ = cm.update(np.array([[1, 1]]), np.array([[1, 0]]))
        >>> cm.matrix.tolist()
        [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
        >>> round(cm.miou(), 4), round(cm.pixel_accuracy(), 4)
        (0.4167, 0.6)
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, y_true, y_pred) -> "ConfusionMatrix":
        """Add a batch: y_true label maps; y_pred ids of the same shape, or logits with a class axis."""
        y_true, y_pred = _labels(np.asarray(y_true), ops.convert_to_numpy(y_pred))
        counts = confusion_matrix(y_true, y_pred, self.num_classes, self.ignore_index)
        self.matrix += ops.convert_to_numpy(counts).astype(np.int64)
        return self

    def reset(self) -> None:
        """Forget everything counted."""
        self.matrix[:] = 0

    def per_class_iou(self) -> np.ndarray:
        """float64 [C]; NaN for classes absent from both ground truth and prediction."""
        return ops.convert_to_numpy(per_class_iou(self.matrix))

    def miou(self) -> float:
        """Mean IoU over the classes present (see the module docstring)."""
        return float(miou(self.matrix))

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly."""
        return float(pixel_accuracy(self.matrix))

    def as_dict(self, class_names=None) -> dict:
        """JSON-ready results: miou, pixel_accuracy, and per-class IoU (None where absent).

        Args:
            class_names: names for the per-class entries (default: "0", "1", ...).
        """
        names = class_names or [str(i) for i in range(self.num_classes)]
        ious = self.per_class_iou()
        return {
            "miou": self.miou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, ious)},
            "pixels": int(self.matrix.sum()),
        }


@keras.saving.register_keras_serializable(package="mobileseg")
class MeanIoU(keras.metrics.Metric):
    """Mean IoU for `model.fit` / `evaluate`, skipping the ignore index; same math as `ConfusionMatrix`.

    Accepts logits or probabilities [B, H, W, C] (argmaxed) or predicted ids [B, H, W],
    against labels [B, H, W] or [B, H, W, 1]. Counts accumulate in int64 over the epoch.
    Keras' own `keras.metrics.MeanIoU` would also do; this one shares its code with the
    offline evaluation so the two can never disagree.

    Args:
        num_classes: C.
        ignore_index: the ground-truth label that is not counted.
        name: metric name in logs.
        dtype: dtype of the result.

    Example:
        >>> metric = MeanIoU(num_classes=2)
        >>> logits = np.array([[[[2.0, 0.0], [0.0, 1.0]], [[0.0, 3.0], [1.0, 0.0]]]])  # ids [[0, 1], [1, 0]]
        >>> metric.update_state(np.array([[[0, 1], [1, 255]]]), logits)
        >>> float(metric.result())
        1.0
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, name: str = "miou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="int64", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("MeanIoU does not take sample weights; mark pixels to skip with the ignore index")
        y_true, y_pred = _labels(y_true, y_pred)
        counts = confusion_matrix(y_true, y_pred, self.num_classes, self.ignore_index)
        self.confusion.assign(self.confusion + ops.cast(counts, "int64"))

    def result(self):
        return ops.cast(miou(self.confusion), self.dtype)

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "int64"))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_index": self.ignore_index}
