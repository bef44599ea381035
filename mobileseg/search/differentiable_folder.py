"""The differentiable search's run folder, ``RUN/differentiable``: its name, checkpoint keys and state.

The files (``checkpoint.npz``, ``state.json``) are `mobileseg.training.loop`'s; what goes in them
and how a run resumes is `mobileseg.search.differentiable`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobileseg.state_files import read_json
from mobileseg.training.loop import STATE, fixed_conflicts

FOLDER = "differentiable"
CHECKPOINT_KEYS = ("epoch", "log", "candidates", "fixed", "rng", "latency_weight", "latency_scale_ms", "weights")
"""The header keys of ``checkpoint.npz``."""


def resume_conflicts(stored: dict, ours: dict) -> list[str]:
    """``key old -> new`` for every fixed setting of ``ours`` that differs from the stored run's."""
    return [f"{key} {old!r} -> {new!r}" for key, old, new in fixed_conflicts(stored, ours)]


def read_state(run_dir: str | os.PathLike) -> dict | None:
    """``RUN/differentiable/state.json``, or None when there is none.

    Raises:
        mobileseg.state_files.StateFileError: a damaged file (named, with what to do).
    """
    folder = Path(run_dir) / FOLDER
    return read_json(folder / STATE, damaged_advice(folder), ("fixed",))


def damaged_advice(folder: Path) -> str:
    """What to do about a damaged file of ``RUN/differentiable/``: the message's second half."""
    return f"delete {folder} to run the differentiable search again from the start, or put back a good copy"

