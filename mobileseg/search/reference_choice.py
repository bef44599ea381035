"""Which reference networks a search places on its plot (``--references``), and what they cost.

A reference is placed with the search's own latency model, so each of its blocks must be
in the latency table: with a measuring backend every block it lacks is built, converted and
timed once (about 2 s a block on this machine), which for the 11 networks of
``search_space/references/`` is some 140 blocks. The values of ``--references``:

- ``all``: every file of ``search_space/references/`` (`reference_files`);
- ``none``: no reference;
- ``cheapest:K``: of those, the K whose blocks are cheapest to add: fewest blocks missing
  from the table once the space's own blocks are in it (ties: by file name);
- ``FILE,FILE,...``: these genotype files (paths, or names of shipped ones:
  `mobileseg.shipped_files.shipped_path`).

Example:
    >>> parse_references("cheapest:3").cheapest, len(parse_references("all").files) > 5
    (3, True)
    >>> parse_references("none").files
    ()
    >>> parse_references("cheapest:0")
    Traceback (most recent call last):
    ...
    ValueError: --references cheapest:0: K must be a positive integer
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from mobileseg.shipped_files import REFERENCES, shipped_path


def reference_files() -> list[Path]:
    """The reference genotype files, sorted by name."""
    return sorted(REFERENCES.glob("*.yaml"))


@dataclasses.dataclass(frozen=True)
class ReferenceChoice:
    """What ``--references`` asks for.

    Attributes:
        spec: the flag's value.
        files: the candidate genotype files.
        cheapest: keep only this many of them (the cheapest to measure), or None for all.
    """

    spec: str
    files: tuple[Path, ...]
    cheapest: int | None = None


def parse_references(spec: str) -> ReferenceChoice:
    """The files ``--references spec`` names (checked to exist, not yet read).

    Raises:
        ValueError: a malformed ``cheapest:K`` or a file that does not exist (named).
    """
    if spec == "all":
        return ReferenceChoice(spec, tuple(reference_files()))
    if spec == "none":
        return ReferenceChoice(spec, ())
    if spec.startswith("cheapest:"):
        count = spec.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--references {spec}: K must be a positive integer")
        return ReferenceChoice(spec, tuple(reference_files()), int(count))
    files = tuple(shipped_path(name.strip(), "genotype") for name in spec.split(",") if name.strip())
    missing = [str(path) for path in files if not path.is_file()]
    if not files or missing:
        raise ValueError(f"--references {spec}: expected all, none, cheapest:K or genotype files; "
                         f"no such file: {', '.join(missing) or spec!r}")
    return ReferenceChoice(spec, files)


def cheapest(files: Sequence[Path], missing_blocks: Callable[[Path], int], count: int) -> list[Path]:
    """The ``count`` files with the fewest ``missing_blocks`` (ties by file name), in that order.

    Example:
        >>> cost = {"a.yaml": 9, "b.yaml": 2, "c.yaml": 2, "d.yaml": 0}
        >>> [p.name for p in cheapest([Path(n) for n in cost], lambda p: cost[p.name], 3)]
        ['d.yaml', 'b.yaml', 'c.yaml']
    """
    return sorted(files, key=lambda path: (missing_blocks(path), path.name))[:count]
