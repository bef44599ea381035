"""The ``adb`` latency backend through the fake adb of tests/android: blocks timed on a phone,
one adapter for its records, and a phone unplugged mid-build that loses nothing."""

import pytest

from mobileseg.latency import adb_backend
from mobileseg.latency.predictor import MeasuringLatencyModel, latency_model_from_spec
from mobileseg.latency.signature import BlockSignature
from mobileseg.latency.table import LatencyTable
from mobileseg.latency.table_errors import DeviceMismatchError
from mobileseg.latency.testing import block_model
from tests.android.fake_phone import PRESETS, FakeAdb
from tests.latency.cli_runner import FAST, SMALL_SPACE, cli

PIXEL = PRESETS["pixel7"]["serial"]
S23 = PRESETS["galaxy_s23"]["serial"]
# benchmark_model 2024 output: median 4.401 ms, p95 4.587 ms, 1 XNNPACK delegate kernel
OUTPUTS = {"default": "v2024_percentiles_op_profile.txt"}
PREPARE_COMMANDS, BLOCK_COMMANDS = 5, 5  # adb commands to a phone: prepare(), one block


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> FakeAdb:
    fake = FakeAdb(tmp_path / "fakeadb")
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    for key in ("MOBILESEG_BENCHMARK_MODEL", "MOBILESEG_ANDROID_BENCH_DIR"):
        monkeypatch.delenv(key, raising=False)
    return fake


@pytest.mark.parametrize("record, expected", [
    ({"avg_ms": 4.4, "median_ms": 4.3, "p95_ms": 4.6, "std_ms": 0.1, "min_ms": 4.2, "runs": 226,
      "num_runs": 50, "delegation": [{"delegate": "XNNPACK", "coverage": "partial", "kernels": 3}]},
     {"median_ms": 4.3, "p90_ms": None, "p95_ms": 4.6, "std_ms": 0.1, "min_ms": 4.2, "runs": 226,
      "xnnpack_partitions": 3, "fallback_ops": None}),
    ({"avg_ms": 23.87, "median_ms": None, "p95_ms": None, "std_ms": 0.2, "min_ms": 23.6,
      "runs": 50, "num_runs": 50, "delegation": []},
     {"median_ms": 23.87, "p90_ms": None, "p95_ms": None, "std_ms": 0.2, "min_ms": 23.6, "runs": 50,
      "xnnpack_partitions": None, "fallback_ops": None}),
])
def test_one_adapter_for_phone_records(record, expected):
    assert adb_backend.entry_from_android(record) == expected


def test_a_record_without_latency_is_refused():
    with pytest.raises(ValueError, match="no latency for seg.tflite"):
        adb_backend.entry_from_android({"model_name": "seg.tflite", "avg_ms": None})


def test_adb_spec_times_missing_blocks_on_the_phone(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7", outputs=OUTPUTS)
    fake_adb.add_phone("galaxy_s23", outputs=OUTPUTS)
    path = tmp_path / "phone_table.json"
    a = BlockSignature("conv", (8, 8, 4), (8, 8, 4), kernel=3)
    b = BlockSignature("conv", (8, 8, 4), (4, 4, 8), kernel=3, stride=2)
    model = latency_model_from_spec(f"adb:{path}", list, make_model=block_model, serial=PIXEL,
                                    progress=False)
    assert isinstance(model, MeasuringLatencyModel)
    assert model.latency_ms([a, a, b]) == pytest.approx(3 * 4.401)
    assert len(fake_adb.benchmark_calls(PIXEL)) == 2  # each block once
    table = LatencyTable.load(path)
    assert table.fingerprint["model"] == "Pixel 7" and table.fingerprint["threads"] == 1
    assert table.fingerprint["runtime"] == "benchmark_model"
    entry = table[a]
    assert (entry.median_ms, entry.p95_ms, entry.p90_ms, entry.xnnpack_partitions,
            entry.fallback_ops) == (4.401, 4.587, None, 1, None)
    with pytest.raises(DeviceMismatchError, match="model: 'Pixel 7' != 'SM-S911B'"):
        latency_model_from_spec(f"adb:{path}", list, make_model=block_model, serial=S23)


@pytest.mark.slow
def test_phone_unplugged_mid_build_loses_nothing_and_the_build_resumes(fake_adb, tmp_path):
    vanish_after = PREPARE_COMMANDS + 2 * BLOCK_COMMANDS  # the phone goes during the 3rd block
    fake_adb.add_phone("pixel7", outputs=OUTPUTS, faults={"vanish_after_commands": vanish_after})
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE)
    table_path = tmp_path / "phone_table.json"
    args = ["build", "--space", str(space), "--input_size", "32x32", *FAST, "--backend", "adb",
            "--serial", PIXEL, "--out", str(table_path)]
    lost = cli(*args)
    assert lost.returncode == 3, lost.stderr
    assert f"device {PIXEL} disappeared" in lost.stderr
    assert "2 entries are saved" in lost.stderr and "3 blocks are left" in lost.stderr
    assert "Reconnect the phone and run the same command again" in lost.stderr
    kept = LatencyTable.load(table_path)
    assert len(kept) == 2 and kept.fingerprint["model"] == "Pixel 7"

    fake_adb.device(PIXEL)["faults"] = {}  # plugged back in, and it stays
    fake_adb.write()
    fake_adb.phone_dir(PIXEL).joinpath(".fake_counters.json").unlink()
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 entries, 3 to measure" in resumed.stdout and "measured 3 blocks" in resumed.stdout
    final = LatencyTable.load(table_path)
    assert len(final) == 5 and all(final[key] == entry for key, entry in kept.entries.items())
    assert {entry.median_ms for entry in final.entries.values()} == {4.401}
