"""Where a result was produced: package versions, the commit, the machine and its load.

Result files (``benchmarks/results/*.json``, ``validation.json``, a search's
``search_state.json``) record these so that a figure can be traced to the code and the
machine it came from, and read against how loaded that machine was.

Example:
    >>> sorted(versions())[:3], machine()["cores"] > 0, len(load_average())
    (['ai-edge-litert', 'keras', 'mobileseg_commit'], True, 3)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "numpy", "optuna")


def versions() -> dict:
    """Python's and `PACKAGES`' versions (None when absent), and the mobileseg commit.

    The commit is ``git rev-parse HEAD`` of the checkout, with ``+uncommitted`` when tracked
    files differ from it; None outside a git checkout.
    """
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        found["mobileseg_commit"] = (commit + ("+uncommitted" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        found["mobileseg_commit"] = None
    return found


def machine() -> dict:
    """The CPU model, core count, architecture and system of this machine."""
    from mobileseg.latency.device import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system()}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]
