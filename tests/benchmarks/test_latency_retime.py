"""How benchmarks/latency_retime.py reads an earlier re-timing's rounds and turns rounds into one latency."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from latency_retime import STATISTICS, earlier_rounds, validate_rounds  # noqa: E402


def _result(tmp_path: Path) -> Path:
    path = tmp_path / "retime.json"
    path.write_text(json.dumps({
        "samples": [{"stem": "network_a", "round_ms": [19.4, 12.5, 12.7]}],
        "calibration_networks": [{"stem": "network_c", "round_ms": [9.0, 9.2, 8.8]}],
    }))
    return path


def test_earlier_rounds_are_read_for_samples_and_calibration_networks(tmp_path):
    rounds = earlier_rounds(_result(tmp_path), ["network_c", "network_a"])
    assert rounds == {"network_c": [9.0, 9.2, 8.8], "network_a": [19.4, 12.5, 12.7]}


def test_a_result_without_every_network_is_refused_naming_the_file(tmp_path):
    path = _result(tmp_path)
    with pytest.raises(ValueError, match=r"retime\.json: no rounds for 1 .*network_b"):
        earlier_rounds(path, ["network_a", "network_b"])


def test_the_minimum_ignores_a_slow_round_the_median_keeps_only_when_most_rounds_are_slow():
    slow_first = [19.4, 12.5, 12.7]
    assert STATISTICS["median"](slow_first) == pytest.approx(12.7)
    assert STATISTICS["min"](slow_first) == pytest.approx(12.5)
    two_slow = [17.6, 21.1, 11.0]
    assert STATISTICS["median"](two_slow) == pytest.approx(17.6)
    assert STATISTICS["min"](two_slow) == pytest.approx(11.0)


def test_validate_rounds_are_read_from_the_network_records_and_an_untimed_record_is_refused(tmp_path):
    records = {"network_a": {"round_ms": [12.2, 13.9, 18.2]}, "network_c": {"round_ms": [9.0]}}
    assert validate_rounds(tmp_path, records) == {"network_a": [12.2, 13.9, 18.2], "network_c": [9.0]}
    with pytest.raises(ValueError, match=r"1 network records without timing rounds, e\.g\. network_b\.json"):
        validate_rounds(tmp_path, {**records, "network_b": {"build_convert_s": 30.0}})
