"""How benchmarks/latency_retime.py reads an earlier re-timing's rounds and turns rounds into one latency."""

import json
import subprocess
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
        "tensorflow_loaded_while_timing": False, "timing_seconds": 1146.2,
        "load_average": {"start": [0.05, 0.4, 1.2], "end": [1.0, 1.0, 1.1]},
    }))
    return path


def test_earlier_rounds_are_read_for_samples_and_calibration_networks_with_how_they_were_timed(tmp_path):
    rounds, timing = earlier_rounds(_result(tmp_path), ["network_c", "network_a"])
    assert rounds == {"network_c": [9.0, 9.2, 8.8], "network_a": [19.4, 12.5, 12.7]}
    assert timing == {"tensorflow_loaded": False, "timing_seconds": 1146.2,
                      "load_average": {"start": [0.05, 0.4, 1.2], "end": [1.0, 1.0, 1.1]}, "machine": None}


def test_a_file_that_is_not_a_retiming_result_is_refused_naming_it(tmp_path):
    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"samples": [], "calibration_networks": []}))
    with pytest.raises(ValueError, match=r"validation\.json: not a latency_retime result .*tensorflow_loaded"):
        earlier_rounds(path, [])
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"validation\.json: cannot be read as JSON"):
        earlier_rounds(path, [])


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


def test_notime_with_rounds_from_is_refused_before_anything_is_read(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "latency_retime.py"
    done = subprocess.run([sys.executable, str(script), f"--validation={tmp_path / 'absent'}", "--table=t.json",
                           "--name=n", "--notime", f"--rounds_from={_result(tmp_path)}"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "--rounds_from and --notime each choose the rounds to score: give one" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_validation_report_is_named_without_a_traceback(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "latency_retime.py"
    done = subprocess.run([sys.executable, str(script), f"--validation={tmp_path}", "--table=t.json", "--name=n"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"{tmp_path / 'validation.json'}: not a readable validation report" in done.stderr
    assert "Traceback" not in done.stderr
