"""What one pipeline run does: `PipelineSettings` (its flags), the `STEPS`, and `settings_from_flags`.

``python -m mobileseg.pipeline`` turns its parsed flags into `PipelineSettings`
(`settings_from_flags`); `mobileseg.pipeline_checks` checks them against the files,
`mobileseg.pipeline_steps` runs the steps and `mobileseg.pipeline_summary` reads what they wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from mobileseg.run.exit_codes import BadInput
from mobileseg.run.latency_backend import parse_latency_backend
from mobileseg.run.run_dir import RunDir
from mobileseg.shipped_files import shipped_path

STEPS = ("search", "train", "export", "bench")
"""The steps, in the order they run."""


class PipelineError(Exception):
    """The run folder is not as a step left it (e.g. a step's recorded settings are missing)."""


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """What one pipeline run does (the flags).

    Args:
        space: the search space file.
        data: the data set, ``KIND:PATH``.
        run_dir: the run folder.
        target_latency_ms: the search's latency target for the int8 model.
        eval_split: the split the export evaluates (``test``, or ``val`` when there is none).
        search_input_size: (height, width) the search trains the supernet and predicts latency at,
            and the size the model ships at; None: the search's default (half the images' size).
        input_size: training crop (height, width); None: the search's size.
        supernet_epochs, population, generations, references: the search's budget; None: its
            ``--budget auto`` (minutes below 100 training images, hours above).
        train_epochs, batch_size: training (``batch_size`` also for the supernet and QAT).
        qat_epochs: quantization-aware fine-tuning epochs.
        threads: LiteRT threads (search latency, export timing, bench).
        latency_backend: ``local[:FILE]``, ``adb[:FILE]`` or ``table:FILE`` (`mobileseg.run.latency_backend`).
        serial: the phone for an adb backend (None: the only one connected).
        seed: seeds every step.
        time_budget: the run's time budget as given (``2h``; `mobileseg.pipeline_budget`), or None.
        dry_run: print the plan, write ``plan.json`` and stop.
    """

    space: Path
    data: str
    run_dir: Path
    target_latency_ms: float
    eval_split: str = "test"
    search_input_size: tuple[int, int] | None = None
    input_size: tuple[int, int] | None = None
    supernet_epochs: int | None = None
    population: int | None = None
    generations: int | None = None
    references: str | None = None
    train_epochs: int = 100
    batch_size: int = 8
    qat_epochs: int = 3
    threads: int = 1
    latency_backend: str = "local"
    serial: str | None = None
    seed: int = 0
    time_budget: str | None = None
    dry_run: bool = False

    @property
    def bench_json(self) -> Path:
        """Where the bench step writes: ``bench/adb.json`` on a phone, else ``bench/local.json``."""
        return RunDir(self.run_dir).bench(self.on_phone)

    @property
    def on_phone(self) -> bool:
        """True when latency is measured on an Android phone."""
        return parse_latency_backend(self.latency_backend).on_phone



def size_text(size) -> str:
    """``HEIGHTxWIDTH``, as the size flags take it.

    Example:
        >>> size_text((64, 80))
        '64x80'
    """
    return f"{size[0]}x{size[1]}"

def settings_from_flags(fv, argv: Sequence[str]) -> PipelineSettings:
    """The `PipelineSettings` the parsed flags give (not yet checked against the files).

    Raises:
        BadInput: a missing flag, an extra argument or a malformed size.
    """
    from mobileseg.cli_flags import parse_size

    if len(argv) > 1:
        raise BadInput(f"unexpected arguments {list(argv[1:])}")
    missing = [f"--{name}" for name in ("space", "data", "run_dir", "target_latency_ms") if fv[name].value is None]
    if missing:
        raise BadInput(f"{', '.join(missing)} required")
    sizes = {}
    for name in ("search_input_size", "input_size"):
        try:
            sizes[name] = parse_size(fv[name].value) if fv[name].value else None
        except ValueError as error:
            raise BadInput(f"--{name}: {error}") from None
    names = [field.name for field in dataclasses.fields(PipelineSettings)
             if field.name not in ("space", "run_dir", "eval_split", *sizes)]
    return PipelineSettings(space=shipped_path(fv.space, "space"), run_dir=Path(fv.run_dir), **sizes,
                            **{name: fv[name].value for name in names})

