"""The grammar of ``--latency_backend`` (search, pipeline, and the latency model behind them).

- ``local[:FILE]``: this CPU, LiteRT; blocks are measured into FILE (default: the run folder's
  ``latency_table.json``);
- ``adb[:FILE]``: an Android phone through adb (``benchmark_model``), measured into FILE likewise;
- ``table:FILE``: a finished table, read only: nothing is measured.

Example:
    >>> parse_latency_backend("table:runs/x/latency_table.json")
    LatencyBackend(spec='table:runs/x/latency_table.json', kind='table', path='runs/x/latency_table.json')
    >>> parse_latency_backend("adb").on_phone, parse_latency_backend("local").path
    (True, None)
    >>> parse_latency_backend("gpu")
    Traceback (most recent call last):
    ...
    mobileseg.run.exit_codes.BadInput: --latency_backend gpu: expected local[:FILE], adb[:FILE] or table:FILE
"""

from __future__ import annotations

import dataclasses

from mobileseg.run.exit_codes import BadInput

KINDS = ("local", "adb", "table")
GRAMMAR = "local[:FILE], adb[:FILE] or table:FILE"


@dataclasses.dataclass(frozen=True)
class LatencyBackend:
    """A parsed ``--latency_backend``.

    Attributes:
        spec: the flag's value, as given.
        kind: ``local``, ``adb`` or ``table``.
        path: the table file; None for ``local`` or ``adb`` without one (the caller's default table).
    """

    spec: str
    kind: str
    path: str | None

    @property
    def measures(self) -> bool:
        """True when missing blocks are measured (``local``, ``adb``); a ``table:`` is read only."""
        return self.kind != "table"

    @property
    def on_phone(self) -> bool:
        """True when latency is measured on an Android phone (``adb``)."""
        return self.kind == "adb"


def parse_latency_backend(spec: str) -> LatencyBackend:
    """The backend ``--latency_backend spec`` names (the file is not opened).

    Raises:
        BadInput: an unknown kind, or ``table:`` without a file (the flag and the grammar are named).
    """
    kind, _, path = spec.partition(":")
    if kind not in KINDS:
        raise BadInput(f"--latency_backend {spec}: expected {GRAMMAR}")
    if kind == "table" and not path:
        raise BadInput(f"--latency_backend {spec}: table needs a file; expected {GRAMMAR}")
    return LatencyBackend(spec, kind, path or None)
