"""The run folder's ``config.yaml``: one section per step, read and written here only.

- `read_config`: the file as a mapping of sections (``{}`` when missing or empty); a file that is
  unreadable, not YAML or not a mapping raises the caller's error, naming the file;
- `record_config`: set one step's section, keep the others, atomically;
- `resume_changes`: the one rule for what differs from a section an earlier run recorded, and
  `ResumeRefused`, the one error (exit 2) of a run folder these flags cannot continue.

docs/architecture.md, section 2, lists the sections, who writes and who reads each.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> record_config(folder, "search", {"budget_ms": 10})
    >>> record_config(folder, "train", {"epochs": 2, "input_size": (8, 8)})
    >>> read_config(folder)
    {'search': {'budget_ms': 10}, 'train': {'epochs': 2, 'input_size': [8, 8]}}
"""

from __future__ import annotations

import json
import os

import yaml

from mobileseg.atomic_write import write_atomic
from mobileseg.bounded_yaml import Limits, read_yaml
from mobileseg.run.exit_codes import BadInput
from mobileseg.run.run_dir import RunDir
from mobileseg.text_files import TextFileError, read_text, reported_as


class ResumeRefused(BadInput):
    """The run folder holds a run that these flags cannot continue; the message names the flag and the run."""


def read_config(run_dir: str | os.PathLike, *, error: type[Exception] = TextFileError,
                limits: Limits | None = None) -> dict:
    """``DIR/config.yaml`` as a dict of sections (``{}`` when the file is missing or empty).

    Args:
        run_dir: the run folder.
        error: what to raise for a file that cannot be used (built from ``PATH: PROBLEM``, as
            `mobileseg.text_files.read_text` does); each caller keeps its own: the steps
            `mobileseg.training.errors.TrainingError`, the run report and the export's reading the default
            `mobileseg.text_files.TextFileError`, which they catch (the report lists the problem), the
            export's recording `mobileseg.deploy.export_settings.ExportError`, which its command reports.
        limits: read within these bounds (`mobileseg.bounded_yaml`), for a folder that may come
            from elsewhere (the run report); None: any size (a run's own steps).

    Raises:
        ``error``: ``PATH: PROBLEM``: unreadable, not UTF-8, not valid YAML, beyond ``limits``,
            or not a mapping of step sections; so that nothing overwrites it.
    """
    path = RunDir(run_dir).file(RunDir.CONFIG)
    if not path.exists():
        return {}
    with reported_as(error):
        if limits is not None:
            data = read_yaml(path, limits=limits)
        else:
            try:
                data = yaml.safe_load(read_text(path))
            except yaml.YAMLError as problem:
                raise TextFileError(path, f"not valid YAML ({problem}); fix or move it away") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise TextFileError(path, f"expected a mapping of step sections, got {type(data).__name__}")
    return data


def record_config(run_dir: str | os.PathLike, section: str, values: dict, *,
                  error: type[Exception] = TextFileError) -> None:
    """Set one step's section of ``DIR/config.yaml`` to ``values``, keeping the other steps' sections; atomic.

    The values are stored as plain JSON data (tuples become lists).

    Raises:
        ``error``: the file there cannot be read as sections (`read_config`); it is left as it is.
    """
    data = read_config(run_dir, error=error)
    data[section] = json.loads(json.dumps(values))  # plain lists, numbers and strings only
    write_atomic(RunDir(run_dir).file(RunDir.CONFIG), yaml.safe_dump(data, sort_keys=False))


def resume_changes(recorded: dict, ours: dict) -> dict[str, tuple[object, object]]:
    """``{key: (recorded value, our value)}`` for each setting of ``ours`` that ``recorded`` holds otherwise.

    ``recorded`` is a section an earlier run wrote in ``config.yaml``; a setting it does not hold
    (absent or null: a run from before that setting was recorded) is not compared.

    Example:
        >>> resume_changes({"data": "synthetic:8", "space_sha256": None}, {"data": "synthetic:9", "space_sha256": "ab",
        ...                                                               "input_size": [8, 8]})
        {'data': ('synthetic:8', 'synthetic:9')}
    """
    return {key: (recorded[key], value) for key, value in ours.items()
            if recorded.get(key) is not None and recorded[key] != value}
