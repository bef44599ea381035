"""The latency model the search uses: a genotype's latency from its blocks' table entries.

`genotype_latency_model` wires `mobileseg.latency.predictor.latency_model_from_spec` to the
network's blocks (`mobileseg.latency.blocks.signatures_of`) and to the one-block models that
measure a missing block (`mobileseg.latency.block_model.block_model`).
"""

from __future__ import annotations

import functools

from mobileseg.latency.block_model import block_model
from mobileseg.latency.blocks import signatures_of
from mobileseg.latency.predictor import latency_model_from_spec


def genotype_latency_model(spec: str, input_size: tuple[int, int], num_classes: int,
                           quantization: str = "int8", **kwargs):
    """The `LatencyModel` the search uses: ``latency_ms(genotype)`` at this input size.

    `mobileseg.latency.predictor.latency_model_from_spec` wired to `signatures_of` and
    `block_model`: ``table:FILE`` (read-only), ``local[:FILE]`` (measure missing blocks on
    this CPU) or ``adb[:FILE]`` (on the phone ``serial=...``).

    Args:
        spec: the backend, e.g. ``table:runs/x/latency_table.json``.
        input_size, num_classes, quantization: of the networks (see `signatures_of`).
        **kwargs: ``default_table``, ``threads``, ``serial``, ``adb``, ``clock``, ``progress``.

    Example:
        >>> import tempfile, pathlib
        >>> from mobileseg.arch import schema_io
        >>> from mobileseg.latency.device import local_fingerprint
        >>> from mobileseg.latency.table import LatencyTable
        >>> g = schema_io.loads('''
        ... name: tiny
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> table = LatencyTable(local_fingerprint(), path=pathlib.Path(tempfile.mkdtemp()) / "t.json")
        >>> for signature, ms in zip(signatures_of(g, (32, 32), 5), [0.5, 0.25]):
        ...     table.add(signature, {"median_ms": ms, "p90_ms": ms, "std_ms": 0.0, "min_ms": ms,
        ...                           "runs": 9, "xnnpack_partitions": 1, "fallback_ops": []})
        >>> table.save()
        >>> genotype_latency_model(f"table:{table.path}", (32, 32), 5).latency_ms(g)
        0.75
    """
    return latency_model_from_spec(
        spec, functools.partial(signatures_of, input_size=tuple(input_size), num_classes=num_classes,
                                quantization=quantization),
        make_model=block_model, quantization=quantization, **kwargs)

