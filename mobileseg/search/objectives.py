"""The two objectives of the search, as the small interfaces it talks to (docs/architecture.md, sections 3 and 4).

- `LatencyModel` (from `mobileseg.latency.predictor`): ``latency_ms(genotype) -> float``,
  the predicted latency of one network in milliseconds (a table, this CPU, a phone).
- `AccuracyModel` (here): ``miou(genotypes) -> list[float]``, a proxy mIoU for a
  batch of networks, each a fraction in [0, 1] as `mobileseg.training.miou`
  computes it. Batches let a supernet recalibrate batch norm once per generation.

The search never imports the supernet or Keras models: anything with these methods
works, which is what lets latency come from a table measured on a phone and
accuracy from a supernet, a trained predictor, or a fake in the tests.

`evaluate_references` puts the reference zoo on the same axes: the latency of every
reference network from the same `LatencyModel` (any genotype has one), and its
proxy mIoU from the same `AccuracyModel` only when the network is in the search
space (a supernet cannot score a network it does not contain).

Example:
    >>> from mobileseg.search.testing import CapacityAccuracyModel, WidthLatencyModel
    >>> isinstance(CapacityAccuracyModel(), AccuracyModel), isinstance(WidthLatencyModel(), LatencyModel)
    (True, True)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from mobileseg.arch import schema_io
from mobileseg.arch.genotype import Genotype
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import SearchSpace
from mobileseg.latency.predictor import LatencyModel, MissingBlockError

__all__ = ["AccuracyModel", "LatencyModel", "ReferencePoint", "checked_mious", "evaluate_references"]


@runtime_checkable
class AccuracyModel(Protocol):
    """What the search needs: a proxy mIoU for each network of a batch."""

    def miou(self, genotypes: list[Genotype]) -> list[float]:
        """One proxy mIoU in [0, 1] per genotype, in order."""
        ...


def checked_mious(values: Sequence[float], genotypes: Sequence[Genotype]) -> list[float]:
    """``values`` as floats, after checking there is one per genotype and each is in [0, 1].

    Raises:
        ValueError: a wrong count, or a value that is not a finite fraction (a percentage
            is refused rather than silently mixed with fractions).

    Example:
        >>> checked_mious([0.5], ["g"])
        [0.5]
        >>> checked_mious([41.2], ["g"])
        Traceback (most recent call last):
        ...
        ValueError: AccuracyModel.miou gave 41.2 for network 0; expected a fraction in [0, 1]
    """
    values = list(values)
    if len(values) != len(genotypes):
        raise ValueError(f"AccuracyModel.miou gave {len(values)} values for {len(genotypes)} networks")
    out = []
    for index, value in enumerate(values):
        value = float(value)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"AccuracyModel.miou gave {value!r} for network {index}; "
                             "expected a fraction in [0, 1]")
        out.append(value)
    return out


@dataclasses.dataclass(frozen=True)
class ReferencePoint:
    """A reference network placed on the search's axes.

    Attributes:
        name: the genotype's name.
        file: the file it was read from ("" when given as a genotype).
        latency_ms: from the search's `LatencyModel`; None if it could not be predicted.
        miou: proxy mIoU from the search's `AccuracyModel`; None when the network is
            outside the search space (or no accuracy model was given).
        in_space: whether ``space.encode`` finds the network in the search space.
        note: why a value is missing, else "".
    """

    name: str
    file: str
    latency_ms: float | None
    miou: float | None
    in_space: bool
    note: str = ""

    def as_dict(self) -> dict:
        """JSON-ready."""
        return dataclasses.asdict(self)


def evaluate_references(references: Iterable[Genotype | str | os.PathLike], latency_model: LatencyModel,
                        accuracy_model: AccuracyModel | None = None,
                        space: SearchSpace | None = None) -> list[ReferencePoint]:
    """Place reference networks on the search's axes with the search's own models.

    Args:
        references: genotypes or genotype files (e.g. ``mobileseg.search.reference_choice.reference_files()``).
        latency_model: the search's latency model; ``latency_ms`` works on any genotype.
            A read-only table that lacks one of a reference's blocks gives that reference
            no latency (the missing block is named in ``note``) instead of failing.
        accuracy_model: the search's accuracy model, asked (in one batch) only for the
            references that are in ``space``.
        space: the search space; without it no reference gets an mIoU.

    Returns:
        One `ReferencePoint` per reference, in order.

    Raises:
        GenotypeError: a reference file that is not a valid genotype.

    Example:
        >>> from mobileseg.search.testing import WidthLatencyModel
        >>> g = schema_io.loads('''
        ... name: ref
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> evaluate_references([g], WidthLatencyModel())
        [ReferencePoint(name='ref', file='', latency_ms=0.16, miou=None, in_space=False, note='no search space given')]
    """
    loaded: list[tuple[Genotype, str]] = []
    for reference in references:
        if isinstance(reference, Genotype):
            loaded.append((reference, ""))
        else:
            loaded.append((schema_io.load(reference), Path(reference).name))
    points: list[dict] = []
    for genotype, file in loaded:
        point = {"name": genotype.name, "file": file, "latency_ms": None, "miou": None,
                 "in_space": False, "note": ""}
        try:
            point["latency_ms"] = float(latency_model.latency_ms(genotype))
        except MissingBlockError as error:
            point["note"] = f"no latency: {error}"
        if space is None:
            point["note"] = point["note"] or "no search space given"
        else:
            try:
                space.encode(genotype)
                point["in_space"] = True
            except GenotypeError:
                point["note"] = point["note"] or "outside the search space: latency only"
        points.append(point)
    inside = [index for index, point in enumerate(points) if point["in_space"]]
    if accuracy_model is not None and inside:
        batch = [loaded[index][0] for index in inside]
        for index, value in zip(inside, checked_mious(accuracy_model.miou(batch), batch), strict=True):
            points[index]["miou"] = value
    return [ReferencePoint(**point) for point in points]
