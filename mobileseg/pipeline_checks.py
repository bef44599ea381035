"""The pipeline's checks before any step starts (`check_inputs`) and its ``pipeline`` config section.

The space and its output stride and the data set's splits are checked by the search's own functions
(`mobileseg.search.search_plan.load_space`, `check_splits`), the sizes by `mobileseg.run.sizes.check_size`
and the backend's grammar by `mobileseg.run.latency_backend.parse_latency_backend`. A run folder holding a
run of another space, data set or search size is refused; `record_settings` writes the ``pipeline``
section of ``DIR/config.yaml`` those checks read back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mobileseg.pipeline_settings import PipelineSettings, size_text
from mobileseg.run.exit_codes import BadInput
from mobileseg.run.fingerprint import file_digest
from mobileseg.run.latency_backend import parse_latency_backend
from mobileseg.run.run_config import ResumeRefused, read_config, record_config, resume_changes


def check_inputs(settings: PipelineSettings) -> PipelineSettings:
    """Check the pipeline's inputs before any step starts (each step checks its own again).

    Returns:
        The settings with ``eval_split`` resolved from the data set's splits.

    Raises:
        BadInput: the message names the flag (or file) and the problem.
    """
    from mobileseg.arch.schema_io import GenotypeError
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source
    from mobileseg.run.sizes import check_size
    from mobileseg.search.search_plan import check_splits, load_space

    if not settings.target_latency_ms > 0:
        raise BadInput(f"--target_latency_ms {settings.target_latency_ms:g}: must be a positive number of ms")
    try:
        _, stride = load_space(settings.space)
    except GenotypeError as error:
        raise BadInput(f"--space: {error}") from None
    for flag, size in (("--search_input_size", settings.search_input_size), ("--input_size", settings.input_size)):
        if size is not None:
            check_size(flag, size, stride, f"the space {settings.space}")
    try:
        source = open_source(settings.data)
        check_splits(source, settings.data)
        splits = source.splits()
        train_pairs = len(source.pairs("train"))
    except DataError as error:
        message = str(error)
        if not message.startswith("--data"):
            message = f"--data {message}" if message.startswith(settings.data) else f"--data {settings.data}: {message}"
        raise BadInput(message) from None
    if train_pairs < settings.batch_size:
        raise BadInput(f"--batch_size {settings.batch_size}: {settings.data} has only {train_pairs} training "
                       "images; lower it or use more data")
    backend = parse_latency_backend(settings.latency_backend)
    if not backend.measures and not Path(backend.path).is_file():
        raise BadInput(f"--latency_backend {settings.latency_backend}: no such file {backend.path}")
    if settings.serial and not backend.on_phone:
        raise BadInput("--serial needs --latency_backend adb")
    _check_same_run(settings)
    return dataclasses.replace(settings, eval_split="test" if "test" in splits else "val")


def _check_same_run(settings: PipelineSettings) -> None:
    """Refuse a run folder whose finished steps came from another space, data set or search size."""
    from mobileseg.text_files import TextFileError

    try:
        config = read_config(settings.run_dir)
    except TextFileError as error:
        raise BadInput(f"--run_dir: {error}") from None
    previous = config.get("pipeline") or {}
    changed = resume_changes(previous, {"space_sha256": file_digest(settings.space), "data": settings.data})
    if "space_sha256" in changed:
        raise ResumeRefused(f"--space {settings.space}: {settings.run_dir} holds a run of another space "
                            f"({previous.get('space')}); use a new --run_dir")
    if "data" in changed:
        raise ResumeRefused(f"--data {settings.data}: {settings.run_dir} holds a run on {previous.get('data')}; "
                            "use a new --run_dir")
    searched = config.get("search") or {}
    if settings.search_input_size and resume_changes(searched, {"input_size": list(settings.search_input_size)}):
        raise ResumeRefused(f"--search_input_size {size_text(settings.search_input_size)}: {settings.run_dir} "
                            f"holds a search at {size_text(searched['input_size'])}; use a new --run_dir")


def record_settings(settings: PipelineSettings) -> None:
    """Write the ``pipeline`` section of ``DIR/config.yaml`` (other steps' sections are kept)."""
    from mobileseg.training.errors import TrainingError

    values = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    values.update(space=str(settings.space), run_dir=str(settings.run_dir),
                  space_sha256=file_digest(settings.space))
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    record_config(settings.run_dir, "pipeline", values, error=TrainingError)

