"""Post-training quantization's input: a representative set of images drawn from the training data.

The TFLite calibrator runs the float model on these images and takes each tensor's
min and max; `mobileseg.quant.qat_calibration.calibrate` does the same to start quantization-aware
training from the post-training ranges. The images are training images (never the
split that is evaluated), picked with a seeded generator so two runs calibrate alike,
resized to the model's input size exactly as evaluation resizes them (bilinear), as
float32 RGB in [0, 255].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

DEFAULT_SAMPLES = 64


def representative_images(source, input_size: tuple[int, int], num_samples: int = DEFAULT_SAMPLES,
                          split: str = "train", seed: int = 0) -> list[np.ndarray]:
    """``num_samples`` images of ``split`` (all of them if fewer), each a float32 batch ``[1, H, W, 3]``.

    Args:
        source: a `mobileseg.data.source.SegmentationSource`.
        input_size: (height, width) the model takes.
        num_samples: how many images.
        split: the split to draw from (the training split: calibration must not see the
            images it is evaluated on).
        seed: seeds the choice of images.

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> images = representative_images(SyntheticSource(12, size=(24, 32)), (16, 16), num_samples=3)
        >>> len(images), images[0].shape, images[0].dtype.name, bool(0.0 <= images[0].min() <= images[0].max() <= 255.0)
        (3, (1, 16, 16, 3), 'float32', True)
    """
    from mobileseg.data.pipeline import eval_dataset

    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    pairs = source.pairs(split)
    if not pairs:
        raise ValueError(f"{source.spec}: the {split} split is empty; no images to calibrate with")
    order = np.random.default_rng(seed).permutation(len(pairs))[:num_samples]
    chosen = [pairs[i] for i in sorted(order)]
    batches = eval_dataset(source, split, batch_size=1, size=tuple(input_size), pairs=chosen)
    return [image.astype(np.float32) for image, _ in batches.as_numpy_iterator()]


def representative_dataset(images: list[np.ndarray]) -> Callable[[], Iterable[list[np.ndarray]]]:
    """The TFLite converter's ``representative_dataset`` generator over ``images`` (each ``[1, H, W, 3]``).

    Example:
        >>> gen = representative_dataset([np.zeros((1, 4, 4, 3), np.float32)] * 2)
        >>> [sample[0].shape for sample in gen()]
        [(1, 4, 4, 3), (1, 4, 4, 3)]
    """
    def generate():
        for image in images:
            yield [image]
    return generate
