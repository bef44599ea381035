"""Made-up latency tables holding every block of a space, so the differentiable search's tests measure nothing."""

from __future__ import annotations

from mobileseg.arch.space import SearchSpace
from mobileseg.latency.blocks import signatures_of
from mobileseg.latency.space_blocks import enumerate_space
from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.overhead import Overhead
from mobileseg.latency.predictor import TableLatencyModel
from mobileseg.latency.table import LatencyTable

RECORD = {"p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []}


def block_ms(signature) -> float:
    """A block's made-up latency: grows with its output size and kernel area, distinct per op."""
    height, width, channels = signature.output
    return round(0.05 + height * width * channels * signature.kernel ** 2 / 20000 + 0.01 * len(signature.op), 6)


def fake_table(space: SearchSpace, input_size: tuple[int, int], num_classes: int, path=None,
               overhead: Overhead | None = None) -> LatencyTable:
    """Every block ``space`` can produce at ``input_size``, at `block_ms`; saved when ``path`` is given."""
    table = LatencyTable(local_fingerprint(), overhead=overhead, path=path)
    for signature in enumerate_space(space, input_size, num_classes).signatures:
        table.add(signature, {**RECORD, "median_ms": block_ms(signature)})
    if path is not None:
        table.save()
    return table


def latency_model(table: LatencyTable, input_size: tuple[int, int], num_classes: int) -> TableLatencyModel:
    """The search's latency model over ``table``."""
    return TableLatencyModel(table, lambda genotype: signatures_of(genotype, input_size, num_classes))
