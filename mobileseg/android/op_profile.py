"""The op-profiling tables of ``benchmark_model`` (``--enable_op_profiling``): their rows and their parser.

With or without the old ``[start]`` column, tab- or space-separated, under ``Operator-wise
Profiling Info for Regular Benchmark Runs:`` or (old builds) without that heading. Times are in
milliseconds, as printed. The whole output is parsed by `mobileseg.android.benchmark_output`.
"""

from __future__ import annotations

import dataclasses
import re

from mobileseg.android.errors import BenchmarkOutputError
from mobileseg.android.run_stats import finite_number

_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_INIT_SECTION = "Profiling Info for Benchmark Initialization:"
_RUN_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs:"


@dataclasses.dataclass(frozen=True)
class OpProfileRow:
    """One node of the "Run Order" op-profiling table.

    Args:
        op: the node type, e.g. ``CONV_2D`` or ``Convolution (NHWC, QC8) IGEMM``.
        name: the node name.
        avg_ms: average time of one call in milliseconds.
        times_called: calls per inference (old builds print 0; read as 1).

    Example:
        >>> OpProfileRow("CONV_2D", "conv1", 0.5, 3).ms_per_run
        1.5
    """

    op: str
    name: str
    avg_ms: float
    times_called: int = 1

    @property
    def ms_per_run(self) -> float:
        """Milliseconds this node costs per inference (``avg_ms`` times the calls)."""
        return self.avg_ms * max(self.times_called, 1)


@dataclasses.dataclass(frozen=True)
class OpTypeRow:
    """One row of the "Summary by node type" table: all nodes of one type together.

    Args:
        op: the node type.
        count: how many nodes have this type.
        ms_per_run: their summed time per inference, in milliseconds (the ``[avg ms]`` column).
        times_called: their summed calls per inference.

    Example:
        >>> OpTypeRow("CONV_2D", 4, 5.946, 4).ms_per_run
        5.946
    """

    op: str
    count: int
    ms_per_run: float
    times_called: int = 0


def _split_columns(line: str) -> list[str]:
    """Columns of a table row: tab-separated in the tool, runs of 2+ spaces once pasted."""
    body = line.strip()
    cells = [cell.strip() for cell in body.split("\t")] if "\t" in body else \
        re.split(r"\s{2,}", body)
    return [cell for cell in cells if cell != ""]


def _parse_table(lines: list[str], start: int) -> tuple[list[dict[str, str]], int]:
    """Rows (header name -> cell) of the table whose header line is ``lines[start]``."""
    header = [cell.strip("[]").strip().lower() for cell in _split_columns(lines[start])]
    rows = []
    index = start + 1
    while index < len(lines):
        raw = lines[index]
        if not raw.strip() or _TABLE_TITLE.match(raw.strip()):
            break
        cells = _split_columns(raw)
        if len(cells) < len(header) - 1:  # not a row of this table
            break
        if len(cells) > len(header):  # a name with tabs: glue the tail back
            cells = cells[:len(header) - 1] + ["\t".join(cells[len(header) - 1:])]
        rows.append(dict(zip(header, cells)))
        index += 1
    return rows, index


def _to_rows(table: list[dict[str, str]], summary: bool) -> tuple:
    out = []
    for cells in table:
        try:
            op = cells["node type"]
            avg_ms = finite_number(cells["avg ms"])
            times = int(float(cells.get("times called", "1") or 1))
            row = (OpTypeRow(op, int(float(cells["count"])), avg_ms, times) if summary else
                   OpProfileRow(op, cells.get("name", ""), avg_ms, times))
        except (KeyError, ValueError) as err:
            raise BenchmarkOutputError(f"unreadable op-profiling row {cells}: {err}") from err
        out.append(row)
    return tuple(out)


def parse_op_tables(lines: list[str]) -> tuple[tuple[OpProfileRow, ...] | None,
                                               tuple[OpTypeRow, ...] | None]:
    """The regular runs' "Run Order" and "Summary by node type" tables."""
    has_run_section = any(line == _RUN_SECTION for line in lines)
    section = None  # "init", "run" or None (old builds without headings)
    run_order = node_types = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line == _INIT_SECTION:
            section = "init"
        elif line == _RUN_SECTION:
            section = "run"
        title = _TABLE_TITLE.match(line)
        wanted = section == "run" or (not has_run_section and section is None)
        if title and wanted and index + 1 < len(lines):
            rows, end = _parse_table(lines, index + 1)
            name = title.group(1)
            if name == "Run Order" and run_order is None:
                run_order = _to_rows(rows, summary=False)
            elif name == "Summary by node type" and node_types is None:
                node_types = _to_rows(rows, summary=True)
            index = end
            continue
        index += 1
    return run_order, node_types
