"""How good the run's models are: per-class IoU, confusion matrices and sample predictions.

The float ``model.keras`` and the shipped ``export/model_int8.tflite`` are evaluated on the
data set's test split (val when it has no test split) with the evaluation
``python -m mobileseg.evaluate`` runs (`mobileseg.split_evaluation.evaluate`: full resolution,
every image of the split), and a few images of that split are segmented by each model for the
report's sample figure.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mobileseg.run.run_dir import RunDir

MODELS = (("float", RunDir.MODEL), ("int8", RunDir.INT8))
"""The models a run report evaluates: label and file in the run folder."""


class QualityError(ValueError):
    """The run's data set or models cannot be used for the report (the file or data set is named)."""


@dataclasses.dataclass
class Sample:
    """One image of the split with its ground truth and each model's prediction (class ids [H, W])."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray]


def evaluation_split(source) -> str:
    """The split a report evaluates on: ``test``, else ``val`` (never tuned on, by the protocol).

    Raises:
        QualityError: the data set has neither split.

    Example:
        >>> from mobileseg.data.synthetic import SyntheticSource
        >>> evaluation_split(SyntheticSource(12))
        'test'
    """
    for split in ("test", "val"):
        if split in source.splits():
            return split
    raise QualityError(f"{source.spec}: no test or val split to evaluate on")


def open_models(run_dir: Path, threads: int | None = None) -> dict[str, object]:
    """The run's models that exist, as `mobileseg.inference.Segmenter` s by label (`MODELS`).

    Raises:
        QualityError: a model file that is there but cannot be loaded (named).
    """
    from mobileseg.inference import ModelError, Segmenter

    models = {}
    for label, name in MODELS:
        path = run_dir / name
        if path.is_file():
            try:
                models[label] = Segmenter.load(path, num_threads=threads)
            except ModelError as error:
                raise QualityError(str(error)) from None
    return models


def evaluate_models(models: dict[str, object], source, split: str, progress: bool | None = None) -> dict[str, dict]:
    """Each model's evaluation result on the split (``per_class_iou``, ``confusion_matrix``, ``miou``, ...).

    Raises:
        QualityError: a model predicting another number of classes, or a bad pair in the split.
    """
    from mobileseg.data.problems import DataError
    from mobileseg.inference import ModelError
    from mobileseg.split_evaluation import evaluate

    results = {}
    for label, segmenter in models.items():
        try:
            results[label] = evaluate(segmenter, source, split, progress=progress)
        except (ModelError, DataError) as error:
            raise QualityError(str(error)) from None
    return results


def sample_pairs(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``total`` items (all of them when there are fewer).

    Example:
        >>> sample_pairs(3, 10), sample_pairs(5, 2), sample_pairs(0, 4)
        ([0, 4, 9], [0, 1], [])
    """
    if count <= 0 or total <= 0:
        return []
    return sorted(set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()))


def predict_samples(models: dict[str, object], source, split: str, count: int) -> list[Sample]:
    """``count`` images of the split, spread over it, each segmented by every model at full resolution."""
    pairs = source.pairs(split)
    samples = []
    for index in sample_pairs(count, len(pairs)):
        image, truth = source.load_pair(pairs[index])
        batch = image[None].astype(np.float32)
        predictions = {label: segmenter.predict(batch)[0] for label, segmenter in models.items()}
        samples.append(Sample(Path(pairs[index].image).name, image, truth, predictions))
    return samples
