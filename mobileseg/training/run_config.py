"""The run folder's ``config.yaml``: one section per step, read strictly and written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from mobileseg.atomic_write import write_atomic
from mobileseg.text_files import read_text
from mobileseg.training.errors import TrainingError


CONFIG = "config.yaml"
"""The run folder's settings file, one section per step (docs/architecture.md, section 2)."""


def read_config(run_dir: str | os.PathLike) -> dict:
    """``DIR/config.yaml`` as a dict ({} when missing).

    Raises:
        TrainingError: the file is not a YAML mapping (named), so that nothing overwrites it.
    """
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(read_text(path, error=TrainingError))
    except yaml.YAMLError as error:
        raise TrainingError(f"{path}: not valid YAML ({error}); fix or move it away") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: expected a mapping of step sections, got {type(data).__name__}")
    return data


def record_config(run_dir: str | os.PathLike, section: str, values: dict) -> None:
    """Set one step's section of ``DIR/config.yaml``, keeping the other steps' sections; atomic.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> record_config(folder, "search", {"budget_ms": 10})
        >>> record_config(folder, "train", {"epochs": 2, "input_size": (8, 8)})
        >>> read_config(folder)
        {'search': {'budget_ms': 10}, 'train': {'epochs': 2, 'input_size': [8, 8]}}
    """
    data = read_config(run_dir)
    data[section] = json.loads(json.dumps(values))  # plain lists, numbers and strings only
    write_atomic(Path(run_dir) / CONFIG, yaml.safe_dump(data, sort_keys=False))
