"""Full-resolution mIoU, pixel accuracy, per-class IoU and confusion matrix of a model on one split.

The library side of ``python -m mobileseg.evaluate`` (`mobileseg.evaluate`), also used by the
export report (`mobileseg.deploy.report`) and the run report (`mobileseg.report`). Both kinds of
model go through the same code: the split's pairs are checked
(`mobileseg.data.checks.verified_pairs`), read at full resolution by
`mobileseg.data.pipeline.eval_dataset`, segmented by `mobileseg.inference.Segmenter.predict`
(images resized to the model's input size, predictions resized back to each image's own size)
and counted in one `mobileseg.training.miou.ConfusionMatrix`. Void pixels (the ignore index) do
not count.
"""

from __future__ import annotations

import sys
import time


def check_classes(segmenter, source) -> list[str]:
    """Refuse a model whose class count differs from the data set's (both are named).

    A class map model without a sidecar has no known class count; its ids are then
    checked image by image in `evaluate`.

    Returns:
        Warnings: the model's sidecar names other classes than the data set (compared
        without case); classes are still matched by id.

    Raises:
        mobileseg.inference.ModelError: the counts differ.
    """
    from mobileseg.inference import ModelError

    if segmenter.num_classes is not None and segmenter.num_classes != source.num_classes:
        raise ModelError(
            f"{segmenter.path} predicts {segmenter.num_classes} classes but {source.spec} has "
            f"{source.num_classes} ({', '.join(source.class_names)})")
    model_names = [name.lower() for name in segmenter.class_names]
    if segmenter.sidecar and model_names != [name.lower() for name in source.class_names]:
        return [f"{segmenter.sidecar} names the classes {', '.join(segmenter.class_names)} but {source.spec} "
                f"has {', '.join(source.class_names)}; classes are matched by id"]
    return []


def evaluate(segmenter, source, split: str = "test", *, max_images: int | None = None,
             skip_bad: bool = False, progress: bool | None = None) -> dict:
    """Evaluate a model on one split at full resolution.

    Args:
        segmenter: a `mobileseg.inference.Segmenter`.
        source: a `mobileseg.data.source.SegmentationSource`.
        split: the split to evaluate.
        max_images: evaluate only the first this many (good) pairs.
        skip_bad: leave bad pairs out instead of stopping at the first.
        progress: show a progress bar on stderr (None: only on a terminal).

    Returns:
        A JSON-ready dict: ``miou``, ``pixel_accuracy``, ``per_class_iou`` (class name ->
        IoU or None), ``pixels``, ``confusion_matrix`` (rows ground truth), ``model``,
        ``backend``, ``input_size``, ``data``, ``split``, ``images``, ``skipped``,
        ``class_names``, ``wall_seconds``, ``model_ms_per_image`` (mean time of
        `Segmenter.predict`, resizing included), ``warnings`` (see `check_classes`),
        ``threads`` (LiteRT only).

    Raises:
        mobileseg.inference.ModelError: class count mismatch (or a class id out of range).
        mobileseg.data.problems.DataError: a bad split or, without ``skip_bad``, a bad pair.

    Example:
        >>> import keras, pathlib, tempfile
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> from mobileseg.inference import Segmenter
        >>> inputs = keras.Input((16, 16, 3))  # a model that predicts class 0 everywhere
        >>> bias = keras.initializers.Constant([1.0] + [0.0] * 7)
        >>> sky = keras.layers.Conv2D(8, 1, kernel_initializer="zeros", bias_initializer=bias)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "sky.keras"
        >>> keras.Model(inputs, sky(inputs)).save(path)
        >>> result = evaluate(Segmenter.load(path), SyntheticSource(10, size=(24, 32)), "val", progress=False)
        >>> iou = result["per_class_iou"]
        >>> result["images"], iou["sky"] == result["pixel_accuracy"], iou["road"]
        (1, True, 0.0)
    """
    from tqdm import tqdm

    from mobileseg.data.checks import verified_pairs
    from mobileseg.data.pipeline import eval_dataset
    from mobileseg.inference import ModelError
    from mobileseg.training.miou import ConfusionMatrix

    warnings = check_classes(segmenter, source)
    start = time.perf_counter()
    pairs, skipped = verified_pairs(source, split, skip_bad=skip_bad, progress=progress)
    if max_images is not None:
        pairs = pairs[:max_images]
    confusion = ConfusionMatrix(source.num_classes, source.ignore_index)
    model_seconds = 0.0
    batches = eval_dataset(source, split, batch_size=1, pairs=pairs)
    bar = tqdm(batches.as_numpy_iterator(), total=len(pairs), desc=f"evaluating {segmenter.path.name}",
               unit="image", file=sys.stderr, disable=None if progress is None else not progress, leave=False)
    for image, mask in bar:
        tick = time.perf_counter()
        predicted = segmenter.predict(image)
        model_seconds += time.perf_counter() - tick
        if predicted.size and predicted.max() >= source.num_classes:
            raise ModelError(f"{segmenter.path} predicted class id {int(predicted.max())} but {source.spec} has "
                             f"{source.num_classes} classes (0..{source.num_classes - 1})")
        confusion.update(mask, predicted)
    result = confusion.as_dict(list(source.class_names))
    images = len(pairs)
    result.update({
        "confusion_matrix": confusion.matrix.tolist(),
        "model": str(segmenter.path),
        "backend": segmenter.backend,
        "input_size": list(segmenter.input_size) if segmenter.input_size else None,
        "data": source.spec,
        "split": split,
        "images": images,
        "skipped": [str(problem) for problem in skipped],
        "class_names": list(source.class_names),
        "wall_seconds": time.perf_counter() - start,
        "model_ms_per_image": 1000.0 * model_seconds / max(images, 1),
        "warnings": warnings,
    })
    if segmenter.backend == "litert":
        result["threads"] = segmenter.num_threads
    return result
