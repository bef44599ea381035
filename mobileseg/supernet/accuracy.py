"""Proxy mIoU of subnets from a trained supernet: the search's `AccuracyModel`.

For each genotype, with the weights it inherits from the supernet (nothing is trained):

1. **batch-norm recalibration**: the moving statistics of every batch norm the network
   uses are recomputed on ``calib_batches`` training batches (training-mode forward with
   that network's arch vector; the statistics are the cumulative average over the
   batches, i.e. momentum ``t / (t + 1)`` at batch t, so the first batch replaces the old
   values: Cai et al., "Once-for-All", ICLR 2020, Sec. 3.4; Yu & Huang, "Universally
   Slimmable Networks", ICCV 2019, Sec. 3.2). A shared batch norm's statistics belong to
   whichever network ran last, so they are recomputed for every genotype; the supernet
   updates the statistics of active channels only, so nothing else needs restoring;
2. **mIoU on the validation split** with `mobileseg.training.miou.ConfusionMatrix`: each
   image is resized to the supernet's input size (the search resolution), the logits
   are resized back to the full-resolution mask, argmaxed and counted.

The calibration batches (augmented like training, one fixed draw) and the validation
images (resized once) are prepared when the model is made and reused for every genotype,
so all genotypes are scored on exactly the same data.

Cost per genotype: ``calib_batches`` training-mode forwards of ``batch_size`` images plus
one inference forward per validation image (batched), all through the supernet's one
compiled graph per input shape (no retracing between genotypes). Each forward runs the
genotype's own layers at their widest channel counts (masked), so it costs about what
the widest variant of that architecture costs.

Example:
    >>> import numpy as np
    >>> from mobileseg.arch.space import SearchSpace
    >>> from mobileseg.data.synthetic import SyntheticSource
    >>> from mobileseg.supernet.model import Supernet
    >>> space = SearchSpace.from_text('''
    ... name: tiny
    ... branches:
    ...   - {name: main, source: null, cells: [{op: conv, width: {choice: [8, 16]}, stride: 2}]}
    ... head: {op: light, inputs: [{branch: main}], width: {choice: [8, 16]}}
    ... ''')
    >>> data = SyntheticSource(12, size=(24, 32))
    >>> supernet = Supernet(space, data.num_classes, (16, 16))
    >>> proxy = SupernetAccuracyModel(supernet, data, data, calib_batches=1, batch_size=2)
    >>> [0.0 <= value <= 1.0 for value in proxy.miou([supernet.largest(), supernet.smallest()])]
    [True, True]
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mobileseg.arch.genotype import Genotype
from mobileseg.data.pipeline import Augmentation, eval_dataset, train_dataset
from mobileseg.data.source import SegmentationSource
from mobileseg.supernet.graph_options import supernet_function_options
from mobileseg.supernet.model import Supernet
from mobileseg.training.miou import ConfusionMatrix


class SupernetAccuracyModel:
    """``miou(genotypes)``: proxy mIoU with inherited weights and recalibrated batch norm.

    Args:
        supernet: a trained `Supernet`.
        train_source: the data set whose ``train`` split calibrates batch norm.
        val_source: the data set whose ``split`` is scored.
        input_size: the resolution networks are scored at; must be the supernet's (the
            default), which is fixed when the supernet is built.
        calib_batches: training batches per genotype for batch-norm recalibration.
        batch_size: images per calibration and validation batch.
        max_val_images: score at most this many validation images (the first ones); None: all.
        split: the split scored.
        scale_range: random rescaling of the calibration batches (match the supernet's training,
            e.g. ``(0.25, 1.0)`` for a half-size search).
        seed: the calibration batches' draw.

    Raises:
        ValueError: ``input_size`` differs from the supernet's, or the splits are empty.
    """

    def __init__(self, supernet: Supernet, train_source: SegmentationSource, val_source: SegmentationSource,
                 input_size: tuple[int, int] | None = None, *, calib_batches: int = 16, batch_size: int = 8,
                 max_val_images: int | None = None, split: str = "val",
                 scale_range: tuple[float, float] = (0.5, 2.0), seed: int = 0):
        if input_size is not None and tuple(input_size) != tuple(supernet.input_size):
            raise ValueError(f"input_size {tuple(input_size)} differs from the supernet's {supernet.input_size}; "
                             "build the supernet at the resolution to score at")
        if calib_batches < 1:
            raise ValueError(f"calib_batches must be >= 1, got {calib_batches}")
        if val_source.num_classes != supernet.num_classes:
            raise ValueError(f"the supernet predicts {supernet.num_classes} classes but {val_source.spec} has "
                             f"{val_source.num_classes}")
        self.supernet = supernet
        self.num_classes = supernet.num_classes
        self.ignore_index = val_source.ignore_index
        self.calib_batches = calib_batches
        augmentation = Augmentation(crop_size=supernet.input_size, scale_range=tuple(scale_range))
        calibration = train_dataset(train_source, augmentation=augmentation, batch_size=batch_size, seed=seed,
                                    drop_remainder=True).repeat().take(calib_batches)
        self._calibration = [tf.constant(images) for images, _ in calibration]
        self._validation = self._validation_batches(val_source, split, batch_size, max_val_images)
        if not self._validation:
            raise ValueError(f"{val_source.spec}: no {split} images to score on")
        self._calibrate = tf.function(self._calibrate_step)
        self._predict = tf.function(self._predict_step)
        self.seconds: list[float] = []

    def _validation_batches(self, source, split, batch_size, max_images):
        """Validation images resized to the input size, grouped by mask size, with full-size masks."""
        by_size: dict[tuple[int, int], list] = {}
        for count, (image, mask) in enumerate(eval_dataset(source, split, batch_size=1)):
            if max_images is not None and count >= max_images:
                break
            image = tf.image.resize(image, self.supernet.input_size, method="bilinear")
            by_size.setdefault(tuple(mask.shape[1:3]), []).append((image[0], mask[0].numpy()))
        batches = []
        for size, pairs in by_size.items():
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                batches.append((tf.stack([p[0] for p in chunk]), np.stack([p[1] for p in chunk]), size))
        return batches

    def _calibrate_step(self, images, arch, momentum):
        self.supernet((images, arch), training=True, bn_momentum=momentum)

    def _predict_step(self, images, arch, size):
        logits = self.supernet((images, arch), training=False)
        logits = tf.image.resize(logits, size, method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def recalibrate(self, arch) -> None:
        """Recompute the batch-norm statistics of the network ``arch`` on the calibration batches."""
        arch = tf.constant(arch, tf.int32)
        with supernet_function_options():
            for step, images in enumerate(self._calibration):
                self._calibrate(images, arch, tf.constant(step / (step + 1), tf.float32))

    def score(self, arch) -> float:
        """mIoU of the network ``arch`` on the validation images, as it stands (no recalibration)."""
        arch = tf.constant(arch, tf.int32)
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        with supernet_function_options():
            for images, masks, size in self._validation:
                matrix.update(masks, self._predict(images, arch, tf.constant(size, tf.int32)).numpy())
        return matrix.miou()

    @property
    def val_images(self) -> int:
        """How many validation images are scored."""
        return sum(len(masks) for _, masks, _ in self._validation)

    def score_model(self, model) -> float:
        """mIoU of a standalone network (e.g. one trained from scratch) under the same protocol.

        Args:
            model: a Keras model taking images of the supernet's input size, returning logits.
        """
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        for images, masks, size in self._validation:
            logits = tf.image.resize(model(images, training=False), size, method="bilinear")  # eager: no retracing
            matrix.update(masks, tf.argmax(logits, axis=-1, output_type=tf.int32).numpy())
        return matrix.miou()

    def miou(self, genotypes: Sequence[Genotype]) -> list[float]:
        """Proxy mIoU in [0, 1] of each genotype, in order (see the module docstring).

        Raises:
            GenotypeError: a genotype is not in the supernet's space (checked before any work).
        """
        archs = [self.supernet.encode(genotype) for genotype in genotypes]
        values = []
        for arch in archs:
            started = time.perf_counter()
            self.recalibrate(arch)
            values.append(self.score(arch))
            self.seconds.append(time.perf_counter() - started)
        return values
