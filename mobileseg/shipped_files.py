"""The data files shipped inside the package, and the one resolver that finds them by path or name.

``mobileseg/shipped/`` holds what the commands read at run time: the search spaces
(``search_space/*.yaml``), the reference genotypes (``search_space/references/``, and
``search_space/external/``), the export profiles (``export/``) and the phone benchmark script
with its device list (``android_bench/``). A checkout links ``search_space``, ``export`` and
``android_bench`` at its root to these folders, so ``search_space/default.yaml`` works there as
before; an installed package (``pip install .``) carries them inside it.

`shipped_path` is how every flag that takes a space, a genotype or a profile finds its file: a path
that exists (relative to the working folder) is used as given; one that does not, but names a
shipped file (``search_space/references/seaformer_tiny.yaml``, or a short name such as
``default`` or ``seaformer_tiny``), is the shipped copy; anything else is returned unchanged, for
the reader's own "no such file" error.

Example:
    >>> shipped_path("seaformer_tiny", "genotype").relative_to(SHIPPED).as_posix()
    'search_space/references/seaformer_tiny.yaml'
    >>> shipped_path("default", "space").name, shipped_path("cpu-int8", "profile").name
    ('default.yaml', 'cpu-int8.yaml')
    >>> str(shipped_path("no_such_network", "genotype"))
    'no_such_network'
    >>> shipped_names("space")
    ['default', 'demo']
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"
"""The package's data folder (``mobileseg/shipped/``)."""

SPACES = SHIPPED / "search_space"
"""The search spaces (``search_space/*.yaml``) and, below, the reference and external genotypes."""

REFERENCES = SPACES / "references"
"""The reference networks' genotype files (``search_space/references/``)."""

PROFILES = SHIPPED / "export"
"""The export profiles (``export/NAME.yaml``, `mobileseg.deploy.profiles`)."""

ANDROID_BENCH = SHIPPED / "android_bench"
"""The phone side of ``mobileseg.bench --adb``: ``run_benchmark.sh``, ``devices.yaml``, its README."""

KINDS = {"space": (SPACES,), "genotype": (REFERENCES, SPACES / "external"), "profile": (PROFILES,)}
"""Where each kind of file is looked up by short name, in order."""


def shipped_path(value: str | os.PathLike, kind: str) -> Path:
    """The file ``value`` names: itself if it exists, else the shipped file it names, else itself.

    Args:
        value: a path (``search_space/demo.yaml``, ``runs/x/arch.yaml``) or a short name (``demo``,
            ``seaformer_tiny``, ``cpu-int8``; with or without ``.yaml``).
        kind: ``space``, ``genotype`` or ``profile`` (`KINDS`): which folders a short name is
            looked up in.

    Raises:
        ValueError: an unknown ``kind`` (a programming error, not bad input).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of shipped file {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(value)
    if path.exists():
        return path
    parts = path.parts
    if len(parts) > 1 and (SHIPPED / parts[0]).is_dir() and ".." not in parts and (SHIPPED / path).is_file():
        return SHIPPED / path
    if len(parts) == 1:
        for folder in KINDS[kind]:
            for name in (path.name, f"{path.name}.yaml"):
                if (folder / name).is_file():
                    return folder / name
    return path


def shipped_names(kind: str) -> list[str]:
    """The short names of the shipped files of ``kind``, sorted (for messages and ``--help``)."""
    return sorted(path.stem for folder in KINDS[kind] for path in folder.glob("*.yaml"))
