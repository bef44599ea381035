"""The tf.data input pipeline: decode, augment, batch; for training and for evaluation.

Elements are `(image, mask)`:

- image: float32 [B, H, W, 3], RGB in [0, 255], NOT normalised. The model normalises
  with `mobileseg.data.normalization.MEAN_RGB / STD_RGB` so export can fold them in.
- mask: int32 [B, H, W], class ids 0..num_classes-1, and `IGNORE_INDEX` (255) for void
  labels and for every pixel that augmentation or padding invented.

Training (`train_dataset`): seeded shuffle, parallel decode, random scale (0.5-2.0),
random crop padded with the ignore index where the scaled image is smaller than the crop,
horizontal flip, photometric jitter (brightness, contrast, saturation, hue), batch,
prefetch. Evaluation (`eval_dataset`): full resolution, or one fixed resize, no
augmentation; batches of unequal sizes are padded with the ignore index.

All randomness is stateless: each element gets its own seed pair from
`tf.data.Dataset.random(seed)`, so a given seed gives the same batches whatever the
parallelism (and given the same TensorFlow global seed, if one is set, e.g. by
`keras.utils.set_random_seed`), and each epoch (each new iterator) draws new ones. The augmentation uses
tf.image's stateless ops rather than Keras 3's augmentation layers: those layers draw from
a layer-held seed state (not reproducible element-by-element under a parallel map), and
their geometric layers treat masks like images (RandomZoom resamples a mask bilinearly
and fills with 0, a real class). No Python runs per element (no py_function).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from mobileseg.data.checks import verified_pairs
from mobileseg.data.labels import IGNORE_INDEX
from mobileseg.data.source import Pair, SegmentationSource

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation settings.

    Args:
        crop_size: (height, width) of training crops; every batch has this size.
        scale_range: the image is resized by a factor drawn uniformly from this range
            before cropping (0.5-2.0 as in mmsegmentation / the reference papers).
        flip: flip left-right with probability 0.5.
        brightness: maximum brightness shift, as a fraction of full scale (0 = off).
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast] (0 = off).
        saturation: saturation factor drawn from [1 - saturation, 1 + saturation] (0 = off).
        hue: maximum hue rotation, as a fraction of the colour wheel (0 = off).

    Example:
        >>> Augmentation(crop_size=(256, 256)).scale_range
        (0.5, 2.0)
        >>> Augmentation(crop_size=(0, 8))
        Traceback (most recent call last):
        ...
        ValueError: crop_size must be two positive integers (height, width), got (0, 8)
    """

    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    brightness: float = 0.125
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __post_init__(self):
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be two positive integers (height, width), got {self.crop_size}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        jitter_ok = 0 <= self.brightness <= 1 and 0 <= self.contrast < 1 and 0 <= self.saturation < 1
        if not (jitter_ok and 0 <= self.hue <= 0.5):
            raise ValueError(
                "need 0 <= brightness <= 1, 0 <= contrast < 1, 0 <= saturation < 1, 0 <= hue <= 0.5; "
                f"got {self.brightness}, {self.contrast}, {self.saturation}, {self.hue}"
            )


def augment(image, mask, seed, augmentation: Augmentation):
    """Randomly scale, crop (padding with the ignore index), flip and colour-jitter one pair.

    Deterministic in `seed`; image and mask get the same geometry.

    Args:
        image: uint8 or float [H, W, 3], RGB in [0, 255].
        mask: integer [H, W] internal ids.
        seed: int32/int64 [2], the stateless seed of this element.
        augmentation: the settings.

    Returns:
        (image float32 [h, w, 3] in [0, 255], mask int32 [h, w]) with (h, w) = crop_size.

    Example:
        >>> image = tf.fill([20, 30, 3], tf.constant(200, tf.uint8))
        >>> mask = tf.ones([20, 30], tf.uint8)
        >>> aug = Augmentation(crop_size=(64, 64), scale_range=(1.0, 1.0))
        >>> out_image, out_mask = augment(image, mask, tf.constant([1, 2]), aug)
        >>> out_image.shape, out_mask.dtype.name, sorted(np.unique(out_mask.numpy()).tolist())
        (TensorShape([64, 64, 3]), 'int32', [1, 255])
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)
    crop_h, crop_w = augmentation.crop_size
    image = tf.cast(image, tf.float32)
    mask = tf.cast(mask, tf.float32)[..., None]

    low, high = augmentation.scale_range
    scale = tf.random.stateless_uniform([], seeds[0], low, high)
    size = tf.maximum(tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale), tf.int32), 1)
    image = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(mask, size, method="nearest")

    pad = [[0, tf.maximum(crop_h - size[0], 0)], [0, tf.maximum(crop_w - size[1], 0)], [0, 0]]
    image = tf.pad(image, pad, constant_values=0.0)
    mask = tf.pad(mask, pad, constant_values=float(IGNORE_INDEX))
    both = tf.image.stateless_random_crop(tf.concat([image, mask], -1), [crop_h, crop_w, 4], seeds[1])
    if augmentation.flip:
        both = tf.image.stateless_random_flip_left_right(both, seeds[2])
    image, mask = both[..., :3] / 255.0, both[..., 3]

    if augmentation.brightness:
        image = tf.image.stateless_random_brightness(image, augmentation.brightness, seeds[3])
    if augmentation.contrast:
        c = augmentation.contrast
        image = tf.image.stateless_random_contrast(image, 1 - c, 1 + c, seeds[4])
    if augmentation.saturation:
        s = augmentation.saturation
        image = tf.image.stateless_random_saturation(image, 1 - s, 1 + s, seeds[5])
    if augmentation.hue:
        image = tf.image.stateless_random_hue(image, augmentation.hue, seeds[6])
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    return tf.ensure_shape(image, [crop_h, crop_w, 3]), tf.ensure_shape(tf.cast(mask, tf.int32), [crop_h, crop_w])


def _keep(image, mask):
    return image, mask


def _array_dataset(images: list[np.ndarray], masks: list[np.ndarray]) -> tf.data.Dataset:
    """A dataset of these (image [h, w, 3], mask [h, w]) arrays, in order; sizes may differ.

    The arrays are stored flat in one tensor each (with their sizes), so that pairs of
    different sizes need no padding.
    """
    sizes = np.array([mask.shape for mask in masks], np.int32).reshape(-1, 2)
    flat_images = tf.RaggedTensor.from_row_lengths(np.concatenate([i.reshape(-1) for i in images]),
                                                   [i.size for i in images])
    flat_masks = tf.RaggedTensor.from_row_lengths(np.concatenate([m.reshape(-1) for m in masks]),
                                                  [m.size for m in masks])
    return tf.data.Dataset.from_tensor_slices((flat_images, flat_masks, sizes)).map(
        lambda image, mask, size: (tf.reshape(image, [size[0], size[1], 3]), tf.reshape(mask, size)))


def decoded_pairs(source: SegmentationSource, pairs: list[Pair]) -> tf.data.Dataset:
    """Every pair decoded once, held in memory: a dataset of (uint8 image [H, W, 3], mask [H, W]).

    The pairs are decoded by the same code as `train_dataset`'s (so a pipeline fed from
    here yields exactly the same batches), in parallel, in ``pairs`` order. Memory: the
    decoded split (CamVid's 367 training pairs at 360x480: 0.25 GB).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> source = SyntheticSource(12, size=(24, 32))
        >>> [(tuple(image.shape), tuple(mask.shape)) for image, mask in decoded_pairs(source, source.pairs("val"))]
        [((24, 32, 3), (24, 32))]
    """
    refs, load = _references(source, pairs)
    decoded = list(refs.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).as_numpy_iterator())
    return _array_dataset([image for image, _ in decoded], [mask for _, mask in decoded])


def _references(source: SegmentationSource, pairs: list[Pair]):
    """(dataset of per-element references, function reference -> (uint8 image, uint8 mask)).

    Files: the references are path strings, decoded in the map. Generated sources: the
    arrays themselves, drawn once here.
    """
    if source.in_memory:
        drawn = [source.load_pair(p) for p in pairs]
        return _array_dataset([d[0] for d in drawn], [d[1] for d in drawn]), _keep

    table = tf.constant(source.label_table)

    def load(image_path, mask_path):
        image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
        raw = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)[..., 0]
        mask = tf.gather(table, tf.cast(raw, tf.int32))
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
        check = tf.debugging.Assert(same, ["image and mask sizes differ:", image_path, mask_path])
        with tf.control_dependencies([check]):
            return tf.identity(image), mask

    paths = ([str(p.image) for p in pairs], [str(p.mask) for p in pairs])
    return tf.data.Dataset.from_tensor_slices(paths), load


def _checked_pairs(source: SegmentationSource, split: str, pairs, skip_bad: bool) -> list[Pair]:
    if pairs is not None:
        return list(pairs)
    good, skipped = verified_pairs(source, split, skip_bad=skip_bad)
    if skipped:
        listing = "\n".join(map(str, skipped))
        logging.warning("%s %s: skipped %d bad pair(s):\n%s", source.spec, split, len(skipped), listing)
    return good


def train_dataset(
    source: SegmentationSource,
    split: str = "train",
    *,
    augmentation: Augmentation,
    batch_size: int,
    seed: int = 0,
    skip_bad: bool = False,
    pairs: list[Pair] | None = None,
    decoded: tf.data.Dataset | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Shuffled, augmented training batches of one split (one pass = one epoch).

    Args:
        source: the data set.
        split: which split.
        augmentation: crop size and augmentation settings.
        batch_size: pairs per batch.
        seed: makes shuffling and augmentation reproducible; each new iterator (epoch)
            reshuffles and redraws from it.
        skip_bad: passed to `verified_pairs` (False: stop at the first bad file).
        pairs: use these pairs as they are instead of checking the split.
        decoded: `decoded_pairs` of these pairs, to read instead of the files (the
            batches are the same; the decoding is not done again every epoch).
        drop_remainder: drop the last, smaller batch.

    Returns:
        Dataset of (image float32 [B, h, w, 3] in [0, 255], mask int32 [B, h, w]).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> ds = train_dataset(SyntheticSource(12, size=(24, 32)), augmentation=Augmentation((16, 16)), batch_size=4)
        >>> [(tuple(x.shape), y.dtype.name) for x, y in ds]  # 10 train scenes
        [((4, 16, 16, 3), 'int32'), ((4, 16, 16, 3), 'int32'), ((2, 16, 16, 3), 'int32')]
    """
    pairs = _checked_pairs(source, split, pairs, skip_bad)
    refs, load = (decoded, _keep) if decoded is not None else _references(source, pairs)
    refs = refs.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip(refs, seeds).map(
        lambda ref, element_seed: augment(*load(*ref), element_seed, augmentation),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


def eval_dataset(
    source: SegmentationSource,
    split: str = "val",
    *,
    batch_size: int = 1,
    size: tuple[int, int] | None = None,
    pad_to_multiple: int = 1,
    skip_bad: bool = False,
    pairs: list[Pair] | None = None,
    cache: bool = False,
) -> tf.data.Dataset:
    """Batches of one split in listing order, without augmentation.

    Args:
        source: the data set.
        split: which split.
        batch_size: pairs per batch; pairs of unequal size are padded to the largest,
            images with 0 and masks with the ignore index (so metrics are unaffected).
        size: (height, width) to resize every pair to (image bilinear, mask nearest);
            None keeps the full resolution.
        pad_to_multiple: also pad height and width up to a multiple of this (e.g. the
            network's output stride), again with the ignore index in the mask.
        skip_bad: passed to `verified_pairs` (False: stop at the first bad file).
        pairs: use these pairs as they are instead of checking the split.
        cache: keep decoded (and resized) pairs in memory after the first pass.

    Returns:
        Dataset of (image float32 [B, H, W, 3] in [0, 255], mask int32 [B, H, W]).

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> ds = eval_dataset(SyntheticSource(12, size=(24, 30)), "val", pad_to_multiple=8)
        >>> [(tuple(x.shape), tuple(y.shape)) for x, y in ds]
        [((1, 24, 32, 3), (1, 24, 32))]
    """
    pairs = _checked_pairs(source, split, pairs, skip_bad)
    refs, load = _references(source, pairs)

    def prepare(*ref):
        image, mask = load(*ref)
        image, mask = tf.cast(image, tf.float32), tf.cast(mask, tf.int32)
        if size is not None:
            image = tf.image.resize(image, size, method="bilinear")
            mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
        if pad_to_multiple > 1:
            hw = tf.shape(mask)
            pad_h, pad_w = (-hw[0]) % pad_to_multiple, (-hw[1]) % pad_to_multiple
            image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]], constant_values=0.0)
            mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=IGNORE_INDEX)
        return image, mask

    ds = refs.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    ds = ds.padded_batch(batch_size, padding_values=(tf.constant(0.0), tf.constant(IGNORE_INDEX, tf.int32)))
    return ds.prefetch(AUTOTUNE)
