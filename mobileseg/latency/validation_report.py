"""The rows of a latency validation report: each network's prediction against its measurement.

``python -m mobileseg.latency validate`` times seeded networks end to end
(`mobileseg.latency.validation.measure_networks`) and writes one row per network
(`validation_rows`), the accuracy per op (`by_op`) and the worst predictions (`worst`) into
``validation.json``; the summary figures are `mobileseg.latency.validation.summarize`.

Example:
    >>> rows = [{"ops": ["conv"], "error_pct": 4.0}, {"ops": ["conv", "mhsa"], "error_pct": -12.0}]
    >>> by_op(rows)["mhsa"]
    {'samples': 1, 'mean_error_pct': -12.0, 'within_10pct': 0.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mobileseg.latency.validation import error_pct

WORST_FIELDS = ("name", "predicted_ms", "measured_ms", "error_pct", "ops", "blocks_partitions",
                "network_partitions")


def validation_rows(genotypes: Sequence, records: Sequence[dict], model,
                    signatures_of: Callable) -> list[dict]:
    """One row per network: predicted and measured ms, error, its blocks and XNNPACK partitions.

    Args:
        genotypes: the networks, in the order of ``records``.
        records: their measurements (`mobileseg.latency.validation.measure_networks`).
        model: the `mobileseg.latency.predictor.MeasuringLatencyModel` that predicts them (its
            table holds every block).
        signatures_of: ``genotype -> [BlockSignature]``.
    """
    rows = []
    for genotype, record in zip(genotypes, records, strict=True):
        signatures = signatures_of(genotype)
        entries = [model.table[s] for s in signatures]
        predicted = model.latency_ms(genotype)
        measured = record["measured_ms"]
        rows.append({
            "index": record["index"], "name": record["name"], "predicted_ms": round(predicted, 4),
            "measured_ms": measured, "round_ms": record.get("round_ms"),
            "blocks_ms": round(model.blocks_ms(genotype), 4),
            "error_pct": error_pct(predicted, measured),
            "blocks": len(signatures), "ops": sorted({s.op for s in signatures}),
            "blocks_partitions": sum(e.xnnpack_partitions or 0 for e in entries),
            "network_partitions": record["measurement"]["xnnpack_partitions"],
            "network_fallback_ops": sorted(set(record["measurement"]["fallback_ops"] or ())),
            "build_convert_s": record["build_convert_s"], "measure_s": record["measure_s"],
            "genotype": record["genotype"]})
    return rows


def by_op(rows: list[dict]) -> dict:
    """Per op: how many samples contain it and how well those are predicted."""
    ops = sorted({op for row in rows for op in row["ops"]})
    result = {}
    for op in ops:
        errors = [row["error_pct"] for row in rows if op in row["ops"]]
        result[op] = {"samples": len(errors), "mean_error_pct": round(sum(errors) / len(errors), 2),
                      "within_10pct": round(sum(abs(e) <= 10 for e in errors) / len(errors), 3)}
    return result


def worst(rows: list[dict], count: int = 10) -> list[dict]:
    """The ``count`` rows of largest absolute error, worst first, with the `WORST_FIELDS` only."""
    return sorted(({k: row[k] for k in WORST_FIELDS} for row in rows),
                  key=lambda r: -abs(r["error_pct"]))[:count]
