"""What a run folder holds, read for the run report: each file when it is there, None when not.

A run folder is made by ``python -m mobileseg.pipeline`` (or its steps run alone; see
docs/architecture.md, section 2). The report shows whatever part of a run exists, so
nothing here is required but one sign that the folder is a run at all (`MARKERS`). A file
that is there but damaged is not an error either: it is left out and its problem is kept in
`RunFolder.problems`, which the report lists.

Example:
    >>> import pathlib, tempfile
    >>> open_run(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mobileseg.report.run_folder.NotARunError: ...: not a run folder (none of config.yaml, arch.yaml, pareto.json, summary.json in it)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mobileseg.run.run_dir import RunDir

MARKERS = (RunDir.CONFIG, RunDir.ARCH, RunDir.PARETO_JSON, RunDir.SUMMARY)
"""A folder holding none of these is not a run."""


class NotARunError(ValueError):
    """A --run_dir that is not a run folder (named, with what is missing)."""


@dataclasses.dataclass
class RunFolder:
    """The parts of one run, each None when the run does not have it.

    Attributes:
        path: the folder.
        config: ``config.yaml`` (one section per step), ``{}`` when absent.
        summary: the pipeline's ``summary.json``.
        pareto: the search's ``pareto.json``.
        export_report: ``export/report.json``.
        bench: the first of `RunDir.BENCHES` found (this CPU's, else a phone's).
        genotype: the chosen network (``arch.yaml``).
        problems: files present but unreadable, one line each (file and problem).
    """

    path: Path
    config: dict
    summary: dict | None
    pareto: dict | None
    export_report: dict | None
    bench: dict | None
    genotype: object | None
    problems: list[str]

    def file(self, name: str) -> Path | None:
        """``path / name`` when that file exists, else None."""
        candidate = self.path / name
        return candidate if candidate.is_file() else None

    def setting(self, key: str):
        """A setting as the steps recorded it: the first of the pipeline, train, search, export sections.

        Example:
            >>> run = RunFolder(Path("r"), {"search": {"data": "synthetic:8"}, "train": {"data": "synthetic:9"}},
            ...                 None, None, None, None, None, [])
            >>> run.setting("data"), run.setting("seed")
            ('synthetic:9', None)
        """
        for section in ("pipeline", "train", "search", "export"):
            value = (self.config.get(section) or {}).get(key)
            if value is not None:
                return value
        return None


def open_run(run_dir: str | os.PathLike) -> RunFolder:
    """Read what the run folder holds.

    Raises:
        NotARunError: no such folder, or a folder without any of `MARKERS`.
    """
    from mobileseg.arch import schema_io
    from mobileseg.arch.genotype import GenotypeError
    from mobileseg.bounded_yaml import LIMITS
    from mobileseg.run.run_config import read_config
    from mobileseg.state_files import StateFileError, read_json
    from mobileseg.text_files import TextFileError

    folder = RunDir(run_dir)
    path = folder.path
    if not path.is_dir():
        raise NotARunError(f"{path}: no such folder")
    if not any(folder.file(name).is_file() for name in MARKERS):
        raise NotARunError(f"{path}: not a run folder (none of {', '.join(MARKERS)} in it)")
    problems: list[str] = []

    def json_file(name: str) -> dict | None:
        try:
            return read_json(folder.file(name), "left out of the report")
        except StateFileError as error:
            problems.append(str(error))
            return None

    config: dict = {}
    if folder.file(RunDir.CONFIG).is_file():
        try:
            config = read_config(path, limits=LIMITS)
        except TextFileError as error:
            problems.append(f"{error}; left out of the report")
    genotype = None
    if folder.file(RunDir.ARCH).is_file():
        try:
            genotype = schema_io.load(folder.file(RunDir.ARCH))
        except GenotypeError as error:
            problems.append(f"{error}; left out of the report")
    bench = next((json_file(name) for name in RunDir.BENCHES if folder.file(name).is_file()), None)
    return RunFolder(path=path, config=config, summary=json_file(RunDir.SUMMARY), pareto=json_file(RunDir.PARETO_JSON),
                     export_report=json_file(RunDir.EXPORT_REPORT), bench=bench, genotype=genotype,
                     problems=problems)

