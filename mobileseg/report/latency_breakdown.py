"""Where the milliseconds go: the chosen network's predicted latency, block by block.

The search predicts a network's latency as the sum of its blocks' medians in the run's
latency table, corrected by the table's fitted overhead (`mobileseg.latency.predictor`).
`breakdown` lists those blocks (`mobileseg.latency.blocks.named_signatures`) with their
milliseconds, so the report can show which cells cost the most and how the sum compares
with the int8 file the bench step timed.
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class BlockTime:
    """One block of the network: its name (``main[2]``, ``head``), op, shapes and median ms (None: not in the table)."""

    name: str
    op: str
    shapes: str
    ms: float | None


@dataclasses.dataclass(frozen=True)
class Breakdown:
    """The blocks of one network at one input size, and the table's prediction for all of them.

    Attributes:
        blocks: every block, in branch order, then the head.
        blocks_ms: the sum of the blocks' medians (those in the table).
        predicted_ms: ``blocks_ms`` with the table's overhead applied (None when blocks are missing).
        table: the latency table's file.
        device: the table's device (CPU or phone model) and threads.
    """

    blocks: tuple[BlockTime, ...]
    blocks_ms: float
    predicted_ms: float | None
    table: str
    device: str

    @property
    def missing(self) -> list[str]:
        """The blocks the table has no time for."""
        return [block.name for block in self.blocks if block.ms is None]


def breakdown(genotype, table_path: str | os.PathLike, input_size: tuple[int, int], num_classes: int) -> Breakdown:
    """The per-block latency of ``genotype`` at ``input_size`` from the table at ``table_path``.

    Args:
        genotype: a `mobileseg.arch.genotype.Genotype`.
        table_path: a ``latency_table.json`` (`mobileseg.latency.table.LatencyTable`).
        input_size: (height, width) the network runs at (the search's).
        num_classes: the head's classes.

    Raises:
        mobileseg.latency.table.TableFormatError: the table cannot be read.

    Example:
        >>> import pathlib, tempfile
        >>> from mobileseg.arch import schema_io
        >>> from mobileseg.latency.blocks import signatures_of
        >>> from mobileseg.latency.device import local_fingerprint
        >>> from mobileseg.latency.table import LatencyTable
        >>> g = schema_io.loads('''
        ... name: tiny
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> table = LatencyTable(local_fingerprint(), path=pathlib.Path(tempfile.mkdtemp()) / "t.json")
        >>> signature = signatures_of(g, (32, 32), 5)[0]
        >>> table.add(signature, {"median_ms": 0.5, "p90_ms": 0.5, "std_ms": 0.0, "min_ms": 0.5,
        ...                       "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> table.save()
        >>> result = breakdown(g, table.path, (32, 32), 5)
        >>> [(block.name, block.ms) for block in result.blocks], result.blocks_ms, result.predicted_ms, result.missing
        ([('main[0]', 0.5), ('head', None)], 0.5, None, ['head'])
    """
    from mobileseg.latency.blocks import named_signatures
    from mobileseg.latency.overhead import Overhead
    from mobileseg.latency.table import LatencyTable

    table = LatencyTable.load(table_path)
    blocks = []
    for name, signature in named_signatures(genotype, tuple(input_size), num_classes, table.quantization):
        shapes = f"{'x'.join(map(str, signature.input))} -> {'x'.join(map(str, signature.output))}"
        ms = table[signature].median_ms if signature in table else None
        blocks.append(BlockTime(name, signature.op, shapes, ms))
    blocks_ms = float(sum(block.ms for block in blocks if block.ms is not None))
    complete = all(block.ms is not None for block in blocks)
    predicted = (table.overhead or Overhead()).apply(blocks_ms) if complete else None
    fingerprint = table.fingerprint
    device = (f"{fingerprint.get('model') or fingerprint.get('cpu') or 'unknown device'}, "
              f"{fingerprint.get('threads', '?')} thread(s), {table.quantization}")
    return Breakdown(tuple(blocks), blocks_ms, predicted, str(table_path), device)
