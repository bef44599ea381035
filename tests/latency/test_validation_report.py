"""The per-op accuracy and the worst rows of a latency validation report."""

from mobileseg.latency.validation_report import WORST_FIELDS, by_op, worst


def row(name, ops, error_pct):
    return {"name": name, "ops": ops, "error_pct": error_pct, "predicted_ms": 1.0, "measured_ms": 1.0,
            "blocks_partitions": 1, "network_partitions": 1, "genotype": {}}


def test_by_op_counts_each_sample_under_every_op_it_contains():
    rows = [row("a", ["conv"], 4.0), row("b", ["conv", "mhsa"], -12.0), row("c", ["conv"], 2.0)]
    assert by_op(rows) == {
        "conv": {"samples": 3, "mean_error_pct": -2.0, "within_10pct": 0.667},
        "mhsa": {"samples": 1, "mean_error_pct": -12.0, "within_10pct": 0.0}}


def test_worst_sorts_by_absolute_error_and_keeps_the_report_fields():
    rows = [row(str(i), ["conv"], error) for i, error in enumerate([1.0, -30.0, 5.0, 20.0])]
    assert [r["name"] for r in worst(rows, count=3)] == ["1", "3", "2"]
    assert set(worst(rows)[0]) == set(WORST_FIELDS)
