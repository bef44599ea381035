"""``python -m mobileseg.latency``: build (incremental, resumable after SIGKILL), calibrate, validate."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mobileseg.arch.space import SearchSpace
from mobileseg.latency import space_blocks
from mobileseg.latency.table import LatencyTable
from tests.latency.cli_runner import DEMO, FAST, REPO, SMALL_SPACE, cli


def test_usage_errors(tmp_path):
    result = cli()
    assert result.returncode == 2 and "usage: python -m mobileseg.latency {build,calibrate,validate}" \
        in result.stderr
    result = cli("train", "--space", DEMO)
    assert result.returncode == 2 and "got train" in result.stderr
    result = cli("build", "--space", DEMO)
    assert result.returncode == 1 and "error: build needs --out TABLE.json" in result.stderr
    result = cli("build", "--space", str(tmp_path / "absent.yaml"), "--out", str(tmp_path / "t.json"))
    assert result.returncode == 1 and "absent.yaml: cannot read" in result.stderr
    result = cli("validate", "--space", DEMO, "--table", str(tmp_path / "absent.json"),
                 "--out", str(tmp_path / "v"))
    assert result.returncode == 1 and f"no latency table {tmp_path / 'absent.json'}: build it first" \
        in result.stderr


@pytest.mark.slow
def test_demo_space_build_rerun_and_validate(tmp_path):
    table_path = tmp_path / "table.json"
    args = ["--space", DEMO, "--input_size", "32x32", *FAST]
    count = len(space_blocks.space_signatures(SearchSpace.load(DEMO), (32, 32), 12))
    first = cli("build", *args, "--out", str(table_path))
    assert first.returncode == 0, first.stderr
    table = LatencyTable.load(table_path)
    assert f"{count} block signatures (exact" in first.stdout
    assert f"measured {count} blocks" in first.stdout and len(table) == count
    assert table.fingerprint["threads"] == 1 and table.quantization == "int8"

    again = cli("build", *args, "--out", str(table_path))
    assert again.returncode == 0, again.stderr
    assert f"{count} entries, 0 to measure" in again.stdout and "measured 0 blocks" in again.stdout
    assert LatencyTable.load(table_path).entries == table.entries

    out = tmp_path / "validation"
    validate = ["validate", *args, "--table", str(table_path), "--samples", "3",
                "--calibration_samples", "1", "--out", str(out)]
    result = cli(*validate)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "validation.json").read_text())
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(report["samples"]) == 3 and report["summary"]["samples"] == 3
    for name in ("within_10pct", "rmse_ms", "mape_pct", "spearman_rho", "target_met"):
        assert name in report["summary"]
    assert -1.0 <= report["summary"]["rounds_spearman_rho"] <= 1.0 and "timing rounds agree at rho" in result.stdout
    sample = report["samples"][0]
    overhead = LatencyTable.load(table_path).overhead
    assert overhead is not None and report["overhead"] == overhead.to_dict()
    assert sample["predicted_ms"] == pytest.approx(overhead.apply(sample["blocks_ms"]), abs=1e-3)
    assert sample["measured_ms"] > 0 and sample["blocks"] >= 4
    assert report["calibration"]["seed"] == 1000 and len(report["calibration"]["networks"]) == 1
    calibration_names = {n["name"] for n in report["calibration"]["networks"]}
    assert not calibration_names & {s["name"] for s in report["samples"]}
    assert report["device"]["threads"] == 1 and report["command"].startswith(
        "python -m mobileseg.latency validate")
    assert set(report["timings_s"]) >= {"sampling_s", "calibrate_s", "samples_build_convert_s",
                                        "samples_measure_s", "this_run_s"}
    assert len(report["load_average"]["start"]) == 3 and report["versions"]["tensorflow"]

    stored = sorted((out / "networks").glob("network_*.json"))  # the 3 samples and the calibration network
    assert len(stored) == 4 and len(list((out / "networks").glob("network_*.tflite"))) == 4
    assert all(len(s["round_ms"]) == 3 and s["measured_ms"] == sorted(s["round_ms"])[1] for s in report["samples"])
    stamps = [path.stat().st_mtime_ns for path in stored]
    resumed = cli(*validate)  # nothing is measured again: same networks, same results
    assert resumed.returncode == 0, resumed.stderr
    assert [path.stat().st_mtime_ns for path in stored] == stamps
    again = json.loads((out / "validation.json").read_text())
    assert [s["measured_ms"] for s in again["samples"]] == [s["measured_ms"] for s in report["samples"]]
    assert again["calibration"] is None  # the table has its overhead now


@pytest.mark.slow
def test_killed_build_resumes(tmp_path):
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE)
    table_path = tmp_path / "table.json"
    args = ["build", "--space", str(space), "--input_size", "32x32", *FAST, "--out", str(table_path)]
    process = subprocess.Popen([sys.executable, "-m", "mobileseg.latency", *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while not (table_path.exists() and len(LatencyTable.load(table_path)) >= 1):
            assert process.poll() is None, "the build ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    kept = LatencyTable.load(table_path).entries
    assert 1 <= len(kept) < 5
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} entries, {5 - len(kept)} to measure" in resumed.stdout
    final = LatencyTable.load(table_path).entries
    assert len(final) == 5 and all(final[key] == entry for key, entry in kept.items())
