"""Start a network from other weights (``python -m mobileseg.train --init``): parse, copy, report.

`parse_init` checks the flag's value cheaply, before any data is read; `initialize` copies the
weights into a freshly built network (`mobileseg.warm_start.sources` and
`mobileseg.warm_start.keras_applications` read them, `mobileseg.warm_start.matching` matches
them by name and shape); `write_report` keeps the report in the run folder
(``DIR/init_report.json``). A resumed run never comes here: it continues from its own
``last.keras``. This module imports nothing heavy at its top (``train``'s flag help uses `HELP`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mobileseg.atomic_write import write_atomic
from mobileseg.warm_start.matching import InitError, InitReport, copy_matching

REPORT = "init_report.json"
"""The report's file in the run folder."""

SUPERNET_PREFIX = "supernet:"
IMAGENET_PREFIX = "imagenet:"
HELP = ("FILE.keras or FILE.weights.h5 of another run (weights matched by layer name and shape), "
        "supernet:DIR (the network's weights inherited from the supernet trained in DIR/supernet) or "
        "imagenet:FILE (keras.applications MobileNetV3Small/Large ImageNet weights, .h5 or .weights.h5, "
        "for the MobileNetV3 references)")
"""What ``--init`` takes, for the flag's help and the error messages."""


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """A parsed ``--init``: ``kind`` is keras, weights_h5, supernet or imagenet; ``text`` the flag's value."""

    kind: str
    path: Path
    text: str


def parse_init(text: str) -> InitSpec:
    """Check an ``--init`` value without loading anything heavy (the file or folder is there, of a known kind).

    Raises:
        InitError: an unknown kind, or a file or folder that is not there.

    Example:
        >>> parse_init("runs/nowhere/model.keras")
        Traceback (most recent call last):
        ...
        mobileseg.warm_start.matching.InitError: --init runs/nowhere/model.keras: no such file
    """
    from mobileseg.supernet.trainer import CHECKPOINT, FOLDER, STATE

    if text.startswith(SUPERNET_PREFIX):
        folder = Path(text[len(SUPERNET_PREFIX):])
        for needed in (folder / FOLDER / STATE, folder / FOLDER / CHECKPOINT):
            if not needed.is_file():
                raise InitError(f"--init {text}: {folder} holds no trained supernet (no {needed}); train one "
                                f"with python -m mobileseg.search --stage supernet --run_dir {folder}")
        return InitSpec("supernet", folder, text)
    kind, path = None, Path(text)
    if text.startswith(IMAGENET_PREFIX):
        kind, path = "imagenet", Path(text[len(IMAGENET_PREFIX):])
    if not path.is_file():
        raise InitError(f"--init {text}: no such file")
    if kind is None:
        if path.name.endswith(".weights.h5"):
            kind = "weights_h5"
        elif path.suffix == ".keras":
            kind = "keras"
        else:
            raise InitError(f"--init {text}: expected {HELP}")
    return InitSpec(kind, path, text)


def initialize(model, spec: InitSpec, genotype) -> InitReport:
    """Copy the weights ``spec`` names into ``model`` (the `build_model` network of ``genotype``).

    Raises:
        InitError: the file or folder cannot be read as what it claims to be (named, with why).
    """
    from mobileseg.warm_start import keras_applications, sources

    notes: list[str] = []
    if spec.kind == "keras":
        source = sources.keras_file_weights(spec.path)
    elif spec.kind == "weights_h5":
        source = sources.h5_file_weights(spec.path, model)
    elif spec.kind == "supernet":
        source, notes = sources.supernet_weights(spec.path, genotype)
    else:
        source, notes = keras_applications.imagenet_weights(spec.path, genotype)
    return copy_matching(model, source, spec.text, notes)


def write_report(run_dir: str | os.PathLike, report: InitReport) -> Path:
    """Write ``report`` to ``run_dir/init_report.json`` (atomically, the folder created); its path."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return write_atomic(Path(run_dir) / REPORT, report.to_json())
