"""The by-size rows of the latency predictor benchmark (benchmarks/latency_predictor.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from latency_predictor import BY_SIZE_FIELDS, by_size_row  # noqa: E402


def test_a_row_holds_the_issue_fields_and_the_rounds_agreement():
    samples = [{"error_pct": 4.0, "round_ms": [1.0, 1.1, 1.0]}, {"error_pct": -8.0, "round_ms": [2.0, 1.9, 2.2]},
               {"error_pct": 12.0, "round_ms": [3.0, 3.2, 1.8]}]
    result = {"samples": samples, "load_average": {"start": [1.0, 1.0, 1.0]},
              "commands": {"validate": "python -m mobileseg.latency validate --input_size 184x240 --seed 7"},
              "summary": {"samples": 3, "within_10pct": 2 / 3, "spearman_rho": 1.0, "mape_pct": 8.0,
                          "max_abs_error_pct": 12.0}}
    row = by_size_row(result, "r.json")
    assert set(BY_SIZE_FIELDS) <= set(row)
    assert (row["input_size"], row["seed"], row["within_5pct"], row["result"]) == ("184x240", 7, 0.333, "r.json")
    assert row["rounds_spearman_rho"] == 0.5  # round 3 swaps the last two networks: rho 0.5 against either other
    assert row["cpu"] is None  # a result without a machine (a re-scoring of rounds timed elsewhere)
    assert by_size_row({**result, "machine": {"cpu": "AMD EPYC", "cores": 2}}, "r.json")["cpu"] == "AMD EPYC"


def test_a_row_keeps_the_summary_s_within_5pct_over_the_rounded_sample_errors():
    samples = [{"error_pct": 5.0, "round_ms": [1.0]}, {"error_pct": -8.0, "round_ms": [2.0]}]  # 5.004% rounds to 5.0
    result = {"samples": samples, "load_average": {"start": [1.0, 1.0, 1.0]},
              "commands": {"validate": "python -m mobileseg.latency validate --input_size 360x480 --seed 2"},
              "summary": {"samples": 2, "within_10pct": 1.0, "within_5pct": 0.0, "spearman_rho": 1.0,
                          "mape_pct": 6.5, "max_abs_error_pct": 8.0}}
    assert by_size_row(result, "r.json")["within_5pct"] == 0.0
