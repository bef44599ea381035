"""Copy named weights into a model where name and shape agree, and report what did and did not.

A weight's name is its Keras path inside the model, ``main_1_mbconv/project/conv/kernel``:
the top-level layer's name, then the sublayers'. The source is a mapping from such names to
arrays (`mobileseg.warm_start.sources` reads it from a file, a supernet or ImageNet weights).
Each of the model's weights is one of

- **matched**: the source has a weight of that name and shape, and it is copied;
- **shape mismatch**: the source has that name with another shape (e.g. the classifier of
  another class count): left as initialised;
- **missing**: the source has no such name: left as initialised;

and the source's names that no weight of the model has are **unused**. Layers are the unit of
the report: a layer is listed as matched when every weight of it matched.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import numpy as np


class InitError(ValueError):
    """An ``--init`` that cannot be used; the message names it and the problem."""


def layer_of(path: str) -> str:
    """The top-level layer of a weight path.

    Example:
        >>> layer_of("main_1_mbconv/project/conv/kernel")
        'main_1_mbconv'
    """
    return path.split("/", 1)[0]


@dataclasses.dataclass(frozen=True)
class InitReport:
    """What an initialisation copied.

    Attributes:
        source: what the weights came from (``--init``'s value).
        matched: the model's weight paths that were copied.
        shape_mismatch: ``{path: [model shape, source shape]}`` of the weights left as they were.
        missing: the model's weight paths that the source lacks.
        unused: the source's names that the model has no weight for.
        matched_params: parameters (scalars) copied.
        total_params: parameters of the model's weights.
        notes: what the source did besides copying (e.g. an input normalisation folded in).
    """

    source: str
    matched: list[str]
    shape_mismatch: dict[str, list[list[int]]]
    missing: list[str]
    unused: list[str]
    matched_params: int
    total_params: int
    notes: list[str] = dataclasses.field(default_factory=list)

    def layers(self) -> dict[str, list[str]]:
        """The report by top-level layer: matched (all weights), partly matched, shape mismatch, missing, unused."""
        matched = {layer_of(p) for p in self.matched}
        mismatched = {layer_of(p) for p in self.shape_mismatch}
        missing = {layer_of(p) for p in self.missing}
        return {"matched": sorted(matched - mismatched - missing),
                "partly_matched": sorted(matched & (mismatched | missing)),
                "shape_mismatch": sorted(mismatched - matched),
                "missing": sorted(missing - matched - mismatched),
                "unused": sorted({layer_of(p) for p in self.unused})}

    def summary(self) -> str:
        """A few lines for the console: counts, then the layers that did not match (names)."""
        total = len(self.matched) + len(self.shape_mismatch) + len(self.missing)
        lines = [f"init from {self.source}: {len(self.matched)} of {total} weights matched by name and shape "
                 f"({self.matched_params:,} of {self.total_params:,} parameters)"]
        lines += [f"  {note}" for note in self.notes]
        for kind, names in self.layers().items():
            if kind != "matched" and names:
                lines.append(f"  {kind.replace('_', ' ')} ({len(names)} layers): {_short(names)}")
        for path, (ours, theirs) in list(self.shape_mismatch.items())[:5]:
            lines.append(f"  {path}: model {tuple(ours)}, source {tuple(theirs)}")
        if len(self.shape_mismatch) > 5:
            lines.append(f"  ... {len(self.shape_mismatch) - 5} more shape mismatches in the report file")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The whole report, with the per-layer view, as JSON text."""
        return json.dumps({**dataclasses.asdict(self), "layers": self.layers()}, indent=1) + "\n"


def _short(names: list[str], count: int = 8) -> str:
    shown = ", ".join(names[:count])
    return shown + (f", ... ({len(names) - count} more)" if len(names) > count else "")


def copy_matching(model, source: Mapping[str, np.ndarray], name: str,
                  notes: list[str] | None = None) -> InitReport:
    """Assign every weight of ``model`` (a Keras model) whose path and shape ``source`` has; the report of it.

    Example:
        >>> import keras
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(keras.layers.Dense(2, name="hidden")(inputs)))
        >>> report = copy_matching(model, {"hidden/kernel": np.ones((4, 2)), "fc/kernel": np.ones((5, 3)),
        ...                                "other/kernel": np.ones(1)}, "example")
        >>> report.matched, report.shape_mismatch, report.missing, report.unused
        (['hidden/kernel'], {'fc/kernel': [[2, 3], [5, 3]]}, ['hidden/bias', 'fc/bias'], ['other/kernel'])
        >>> float(model.get_layer("hidden").kernel.numpy().sum())
        8.0
    """
    matched, mismatch, missing, seen = [], {}, [], set()
    matched_params = total_params = 0
    for variable in model.weights:
        path, shape = variable.path, tuple(variable.shape)
        total_params += int(np.prod(shape))
        if path not in source:
            missing.append(path)
            continue
        seen.add(path)
        value = np.asarray(source[path])
        if value.shape != shape:
            mismatch[path] = [list(shape), list(value.shape)]
            continue
        variable.assign(value.astype(variable.dtype))
        matched.append(path)
        matched_params += int(np.prod(shape))
    unused = sorted(set(source) - seen)
    return InitReport(name, matched, mismatch, missing, unused, matched_params, total_params, list(notes or []))
