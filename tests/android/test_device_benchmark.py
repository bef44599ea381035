"""The harness end to end through the fake adb: reports for several models on several
phones, the device fingerprint, the settings sent to benchmark_model, and a clear error for
every fault a phone can have."""

from __future__ import annotations

import json
import shutil

import pytest

from mobileseg.android import errors
from mobileseg.android.adb_client import AdbClient
from mobileseg.android.device_benchmark import AndroidDevice, measure_on_device
from mobileseg.android.multi_device import benchmark_on_devices
from mobileseg.android.table import format_table
from tests.android.fake_phone import PRESETS, benchmark_wrapper

PIXEL = PRESETS["pixel7"]["serial"]
S23 = PRESETS["galaxy_s23"]["serial"]
FAST = {"backoff_s": 0.0}

PIXEL_OUTPUTS = {"default": "v2022_info_prefix_memory_delta.txt",
                 "by_model": {"seg_a": "v2024_percentiles_op_profile.txt",
                              "seg_b": "v2022_info_prefix_memory_delta.txt"}}
S23_OUTPUTS = {"default": "v2022_info_prefix_memory_delta.txt",
               "by_model": {"seg_a": "v2020_inference_timings_peak_memory.txt",
                            "seg_b": "v2024_scientific_notation.txt"}}


@pytest.fixture
def two_phones(fake_adb):
    fake_adb.add_phone("pixel7", outputs=PIXEL_OUTPUTS)
    fake_adb.add_phone("galaxy_s23", outputs=S23_OUTPUTS)
    return fake_adb


def device(serial: str, **kwargs) -> AndroidDevice:
    return AndroidDevice(AdbClient("adb", backoff_s=0.0), serial, **kwargs)


def test_two_models_on_two_phones_give_the_json_report_and_table(two_phones, tflite_models):
    result = benchmark_on_devices(tflite_models, [PIXEL, S23], threads=[1, 4], **FAST)
    assert json.loads(json.dumps(result)) == result

    pixel, s23 = result["devices"]
    assert pixel["error"] is None and s23["error"] is None
    assert pixel["fingerprint"] == {
        "id": PIXEL, "kind": "android", "model": "Pixel 7", "manufacturer": "Google",
        "soc": "GS201", "abi": "arm64-v8a", "android_version": "14", "sdk": "34",
        "build": "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys",
        "runtime": "benchmark_model", "big_core_mask": "f0",
        "big_core_mask_source": "devices.yaml",
        "cpu_max_freq_khz": {"0": 1803000, "1": 1803000, "2": 1803000, "3": 1803000,
                             "4": 2348000, "5": 2348000, "6": 2850000, "7": 2850000}}
    assert (s23["fingerprint"]["model"], s23["fingerprint"]["soc"],
            s23["fingerprint"]["big_core_mask"]) == ("SM-S911B", "SM8550", "f8")

    keys = [(r["model_name"], r["threads"]) for r in pixel["records"]]
    assert keys == [("seg_a.tflite", 1), ("seg_a.tflite", 4), ("seg_b.tflite", 1),
                    ("seg_b.tflite", 4)]
    a1 = pixel["records"][0]
    assert a1["model"] == tflite_models[0] and a1["serial"] == PIXEL
    assert (a1["delegate"], a1["avg_ms"], a1["std_ms"], a1["min_ms"], a1["median_ms"],
            a1["p95_ms"], a1["init_ms"], a1["peak_mb"], a1["runs"]) == (
        "xnnpack", 4.41873, 0.098, 4.29, 4.401, 4.587, 18.342, 29.6836, 226)
    assert a1["op_profile"] is None and a1["big_core_mask"] == "f0"
    assert a1["delegation"] == [{"delegate": "XNNPACK", "coverage": "partial", "kernels": 1}]
    b4 = pixel["records"][3]
    assert (b4["avg_ms"], b4["std_ms"], b4["median_ms"], b4["peak_mb"]) == (
        23.8714, 0.204, None, 33.4492)
    s23_a, s23_b = s23["records"][0], s23["records"][2]
    assert (s23_a["avg_ms"], s23_a["peak_mb"], s23_a["runs"]) == (11.9058, 21.7461, 84)
    assert (s23_b["avg_ms"], s23_b["std_ms"], s23_b["p95_ms"], s23_b["peak_mb"]) == (
        1240.27, 7.68, 1253.311, None)

    # What each phone ran: every setting, pinned to its big cores.
    calls = two_phones.benchmark_calls(PIXEL)
    assert [c["flags"]["num_threads"] for c in calls] == ["1", "4", "1", "4"]
    assert all(c["flags"]["use_xnnpack"] == "true" and
               c["flags"]["report_peak_memory_footprint"] == "true" for c in calls)
    assert two_phones.log_lines(PIXEL, "taskset.log").count("f0=benchmark_model") == 4
    assert two_phones.log_lines(S23, "taskset.log").count("f8=benchmark_model") == 4
    assert result["settings"]["threads"] == [1, 4]

    table = format_table(result).splitlines()
    assert table[0].split()[:4] == ["model", "threads", "delegate", "device"]
    assert len(table) == 2 + 8
    row = next(line for line in table if "SM-S911B" in line and "seg_b" in line
               and line.split()[1] == "1")
    assert row.split()[-8:] == ["1240.27", "7.68", "1239.87", "1253.31", "211.53", "-", "5",
                                f"{1240.27 / 11.9058:.2f}x"]
    assert sum("Pixel 7 [28241FDH3001AB]" in line for line in table) == 4


def test_phones_run_in_parallel(fake_adb, tflite_models):
    for preset in ("pixel7", "galaxy_s23"):
        fake_adb.add_phone(preset, faults={"delay_s": 0.5})
    result = benchmark_on_devices(tflite_models[:1], [PIXEL, S23], threads=[4], **FAST)
    assert [len(d["records"]) for d in result["devices"]] == [1, 1]
    (pixel_run,), (s23_run,) = (fake_adb.benchmark_calls(s) for s in (PIXEL, S23))
    assert max(pixel_run["start"], s23_run["start"]) < min(pixel_run["end"], s23_run["end"])


@pytest.mark.skipif(shutil.which("mksh") is None, reason="mksh (Android's shell) not installed")
def test_device_script_under_mksh(fake_adb, tflite_models, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_SH", "mksh")  # the fake phone runs scripts with Android's shell
    fake_adb.add_phone("galaxy_s23", temps_mc=[48000], cool_schedule_mc=[40000])
    record = device(S23, cool_poll_s=1).measure(tflite_models[1], threads=4)
    assert (record["avg_ms"], record["big_core_mask"], record["cooldown_s"]) == (23.8714, "f8", 1)
    assert fake_adb.log_lines(S23, "taskset.log") == ["f8=true", "f8=benchmark_model"]


def test_mask_derived_from_cpufreq_for_an_unknown_phone(fake_adb, tflite_models):
    fake_adb.add_phone("redmi_k50")
    record = measure_on_device(tflite_models[0], threads=2, **FAST)
    assert record["device"]["big_core_mask"] == "f0"
    assert record["device"]["big_core_mask_source"] == "cpufreq"
    assert record["device"]["soc"] == "MT6895" and record["threads"] == 2
    assert fake_adb.log_lines("9a3f51c2", "taskset.log")[-1] == "f0=benchmark_model"


def test_op_profile_and_gpu_delegate(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7")
    record = device(PIXEL).measure(tflite_models[0], threads=4, delegate="gpu",
                                   op_profile=True, warmup_runs=2, num_runs=30)
    flags = fake_adb.benchmark_calls(PIXEL)[-1]["flags"]
    assert (flags["use_gpu"], flags["use_xnnpack"], flags["use_nnapi"],
            flags["enable_op_profiling"], flags["warmup_runs"], flags["num_runs"]) == (
        "true", "false", "false", "true", "2", "30")
    assert [op["op"] for op in record["op_profile"]][:2] == ["QUANTIZE",
                                                             "Convolution (NHWC, QC8) IGEMM"]
    assert record["op_profile"][1]["share"] == pytest.approx(1.392 / 4.123, abs=1e-6)
    assert record["op_types"][0] == {"op": "Convolution (NHWC, QC8) IGEMM", "count": 1,
                                     "ms_per_run": 1.392, "times_called": 1,
                                     "share": pytest.approx(1.392 / 4.123, abs=1e-6)}
    assert (record["warmup_runs"], record["num_runs"], record["delegate"]) == (2, 30, "gpu")


def test_waits_for_the_phone_to_cool_before_each_run(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", temps_mc=[55000, 31000], cool_schedule_mc=[50000, 44000])
    record = device(PIXEL, cool_poll_s=1).measure(tflite_models[0])
    assert (record["temp_c_start"], record["temp_c"], record["cooldown_s"]) == (55, 44, 2)
    assert record["thermal_warning"] is None
    assert fake_adb.log_lines(PIXEL, "sleep.log") == ["1", "1"]


def test_benchmark_binary_is_pushed_when_given(fake_adb, tflite_models, tmp_path):
    fake_adb.add_phone("pixel7", binary="missing")
    local = tmp_path / "android_aarch64_benchmark_model"
    local.write_text(benchmark_wrapper())
    result = benchmark_on_devices(tflite_models[:1], None, [4], benchmark_binary=str(local),
                                  **FAST)
    assert result["devices"][0]["records"][0]["avg_ms"] == 23.8714
    pushed = fake_adb.phone_dir(PIXEL) / "data/local/tmp/benchmark_model"
    assert pushed.read_text() == local.read_text()


def test_benchmark_binary_from_the_environment(fake_adb, tflite_models, tmp_path,
                                              monkeypatch):
    fake_adb.add_phone("pixel7", binary="missing")
    local = tmp_path / "benchmark_model"
    local.write_text(benchmark_wrapper())
    monkeypatch.setenv("MOBILESEG_BENCHMARK_MODEL", str(local))
    result = benchmark_on_devices(tflite_models[:1], None, [1], **FAST)
    assert result["devices"][0]["records"][0]["runs"] == 50


def test_models_are_pushed_once_per_content(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7")
    phone = device(PIXEL)
    phone.measure(tflite_models[0], threads=1)
    phone.measure(tflite_models[0], threads=4)
    again = device(PIXEL)  # a new session finds the identical copy already there
    again.measure(tflite_models[0], threads=1)
    pushes = [c for c in fake_adb.adb_calls() if "push" in c and c[-1].endswith(".tflite")]
    assert len(pushes) == 1 and pushes[0][-1].startswith("/data/local/tmp/mobileseg/models/seg_a-")


def test_a_file_rewritten_in_place_is_pushed_again(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7")
    phone = device(PIXEL, keep_models=False)
    block = tmp_path / "block.tflite"  # one temporary file per block, as a latency table does
    remotes = []
    for content in (b"first block", b"second block!"):
        block.write_bytes(content)
        phone.measure(block, threads=1)
        remotes.append(fake_adb.benchmark_calls(PIXEL)[-1]["flags"]["graph"])
    assert remotes[0] != remotes[1]
    models = fake_adb.phone_dir(PIXEL) / "data/local/tmp/mobileseg/models"
    assert list(models.iterdir()) == []  # keep_models=False: removed after each run


# --- every fault gives its clear error ------------------------------------------------------

def test_several_phones_and_no_serial(two_phones, tflite_models):
    with pytest.raises(errors.MultipleDevicesError, match="pass --serial"):
        benchmark_on_devices(tflite_models, None, [4], **FAST)


def test_no_phone(fake_adb, tflite_models):
    with pytest.raises(errors.NoDeviceError):
        benchmark_on_devices(tflite_models, None, [4], **FAST)


def test_unauthorized_phone_among_serials(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7")
    fake_adb.add_phone("galaxy_s23", state="unauthorized")
    with pytest.raises(errors.DeviceUnauthorizedError, match=S23):
        benchmark_on_devices(tflite_models, [PIXEL, S23], [4], **FAST)
    assert fake_adb.benchmark_calls(PIXEL) == []  # nothing started before the check


def test_offline_phone(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", state="offline")
    with pytest.raises(errors.DeviceOfflineError, match="replug the cable"):
        benchmark_on_devices(tflite_models, [PIXEL], [4], **FAST)


def test_benchmark_model_missing(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", binary="missing")
    with pytest.raises(errors.BenchmarkBinaryMissingError,
                       match="android_aarch64_benchmark_model") as info:
        benchmark_on_devices(tflite_models, None, [4], **FAST)
    assert info.value.path == "/data/local/tmp/benchmark_model"
    assert info.value.partial_result["devices"][0]["fingerprint"]["model"] == "Pixel 7"


@pytest.mark.parametrize("preset, binary_abi, device_abis", [
    ("galaxy_a10", "arm64-v8a", "armeabi-v7a, armeabi"),  # 64-bit tool on a 32-bit phone
    ("pixel7", "x86_64", "arm64-v8a"),  # the desktop build pushed by mistake
])
def test_benchmark_model_for_another_abi(fake_adb, tflite_models, preset, binary_abi,
                                         device_abis):
    fake_adb.add_phone(preset, binary=binary_abi)
    with pytest.raises(errors.WrongAbiError,
                       match=f"built for {binary_abi} but the device runs {device_abis}"):
        benchmark_on_devices(tflite_models, None, [4], **FAST)


def test_binary_the_phone_cannot_execute(fake_adb, tflite_models):
    # An ELF the ABI check accepts but the (here, x86) kernel refuses: "Exec format error".
    fake_adb.add_phone("pixel7", binary="arm64-v8a")
    with pytest.raises(errors.WrongAbiError, match="arm64-v8a"):
        device(PIXEL).measure(tflite_models[0])


def test_push_failure(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"push_fails": "No space left on device",
                                         "push_fails_matching": "seg_"})
    with pytest.raises(errors.PushError, match="No space left on device") as info:
        benchmark_on_devices(tflite_models, None, [4], **FAST)
    assert info.value.partial_result["devices"][0]["records"] == []


def test_push_cut_short(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"push_short": True})
    with pytest.raises(errors.PushError, match="size check failed"):
        device(PIXEL).prepare()


def test_benchmark_killed(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"killed_after_lines": 12})
    with pytest.raises(errors.BenchmarkKilledError, match="signal 9 .SIGKILL.*low-memory") as e:
        benchmark_on_devices(tflite_models, None, [4], **FAST)
    assert e.value.signal == 9 and e.value.model == "seg_a.tflite"


def test_output_cut_then_retried(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"cut_after_lines": 10, "cut_times": 1})
    record = device(PIXEL).measure(tflite_models[0])
    assert record["avg_ms"] == 23.8714
    runs = [c for c in fake_adb.adb_calls() if "shell" in c and "--graph" in c[-1]]
    assert len(runs) == 2


def test_output_cut_every_time_is_truncated(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"cut_after_lines": 10, "cut_times": 3})
    with pytest.raises(errors.TruncatedOutputError,
                       match="cut off on every attempt .3; adb said 'error: closed'.") as info:
        device(PIXEL).measure(tflite_models[0])
    assert info.value.tail.splitlines()[-1].startswith("INFO: Graph: [")  # last line that came


def test_output_cut_without_adb_error_is_truncated(fake_adb, tflite_models, monkeypatch):
    fake_adb.add_phone("pixel7")
    phone = device(PIXEL)
    phone.prepare()
    original = phone._script

    def cut(args, during, timeout_s=None):  # the shell died: no MOBILESEG_EXIT line
        out = original(args, during, timeout_s)
        if "--graph" not in args:
            return out
        return type(out)(tuple(m for m in out.markers if m[0] != "EXIT"),
                         "\n".join(out.body.splitlines()[:18]))

    monkeypatch.setattr(phone, "_script", cut)
    with pytest.raises(errors.TruncatedOutputError, match="stops before the end") as info:
        phone.measure(tflite_models[0])
    assert "count=21" in info.value.tail


def test_gpu_delegate_failure(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"gpu_fails": True})
    with pytest.raises(errors.BenchmarkFailedError, match="Failed to apply GPU delegate"):
        device(PIXEL).measure(tflite_models[0], delegate="gpu")


def test_graph_missing_on_the_phone_fails_like_the_real_tool(fake_adb):
    fake_adb.add_phone("pixel7")
    phone = device(PIXEL)
    phone.prepare()
    out = phone._script(["--binary", phone.binary_remote, "--graph",
                         "/data/local/tmp/mobileseg/models/gone.tflite", "--max_temp_c", "0"],
                        "benchmarking gone.tflite")
    assert out.exit_status == 1
    with pytest.raises(errors.BenchmarkFailedError,
                       match="Could not open '/data/local/tmp/mobileseg/models/gone.tflite'"):
        phone._interpret(out, "gone.tflite")


def test_phone_unplugged_mid_run_keeps_earlier_records(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"vanish_during_benchmark": 14,
                                         "vanish_graph": "seg_b"})
    phone = device(PIXEL)
    measured = []
    with pytest.raises(errors.DeviceLost, match="disappeared while benchmarking seg_b"):
        for model in tflite_models:
            measured.append(phone.measure(model))
    assert [r["model_name"] for r in measured] == ["seg_a.tflite"]
    assert measured[0]["avg_ms"] == 23.8714


def test_phone_unplugged_in_a_parallel_run(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"vanish_during_benchmark": 5, "vanish_graph": "seg_b"})
    fake_adb.add_phone("galaxy_s23")
    result = benchmark_on_devices(tflite_models, [PIXEL, S23], [4], keep_going=True, **FAST)
    pixel, s23 = result["devices"]
    assert pixel["error"]["type"] == "DeviceLost"
    assert [r["model_name"] for r in pixel["records"]] == ["seg_a.tflite"]
    assert len(s23["records"]) == 2 and s23["error"] is None
    table = format_table(result)
    assert f"Pixel 7 [{PIXEL}] stopped: device {PIXEL} disappeared" in table

    fake_adb.phone_dir(PIXEL).joinpath(".fake_counters.json").unlink()  # plugged back in
    with pytest.raises(errors.DeviceLost) as info:
        benchmark_on_devices(tflite_models, [PIXEL, S23], [4], **FAST)
    partial = info.value.partial_result["devices"]
    assert len(partial[0]["records"]) == 1 and len(partial[1]["records"]) == 2


def test_keep_going_records_a_failed_model(fake_adb, tflite_models):
    fake_adb.add_phone("pixel7", faults={"gpu_fails": True})
    result = benchmark_on_devices(tflite_models, None, [4], delegate="gpu", keep_going=True,
                                  **FAST)
    records = result["devices"][0]["records"]
    assert [r["avg_ms"] for r in records] == [None, None]
    assert records[0]["error"]["type"] == "BenchmarkFailedError"
    assert "error: BenchmarkFailedError" in format_table(result)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"delegate": "cuda"}, ValueError, "delegate must be one of"),
    ({"threads": [0]}, ValueError, "threads must be"),
    ({"threads": []}, ValueError, "threads must be"),
    ({"benchmark_binary": "/nonexistent/benchmark_model"}, FileNotFoundError, "binary"),
])
def test_bad_arguments(fake_adb, tflite_models, kwargs, error, message):
    arguments = {"threads": [4], **kwargs}
    with pytest.raises(error, match=message):
        benchmark_on_devices(tflite_models, None, **arguments)


def test_missing_model_file(fake_adb, tmp_path):
    with pytest.raises(FileNotFoundError, match="model file"):
        benchmark_on_devices([str(tmp_path / "absent.tflite")], None, [4])
