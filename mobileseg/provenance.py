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


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU model name: ``model name`` (x86) or ``Hardware``/``Processor`` (ARM) of cpuinfo.

    Args:
        cpuinfo_path: where to read it; falls back to `platform.processor()`.

    Example:
        >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
        True
    """
    fields = {}
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                name, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(name.strip().lower(), value.strip())
    except OSError:
        pass
    for name in ("model name", "hardware", "processor", "cpu model"):
        value = fields.get(name, "")
        if value and not value.isdigit():  # ARM "processor : 0" is an index, not a name
            return value
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """The CPU model, core count, architecture and system of this machine."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system()}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]
