"""The error hierarchy: one root, and messages that say what to do."""

from __future__ import annotations

import inspect

import pytest

from mobileseg.android import errors

CLASSES = [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
           if issubclass(obj, errors.AndroidBenchError)]


def test_one_hierarchy():
    assert all(issubclass(cls, errors.AndroidBenchError) for cls in CLASSES)
    assert issubclass(errors.DeviceLost, errors.AdbError)
    assert issubclass(errors.DeviceUnauthorizedError, errors.DeviceStateError)
    assert issubclass(errors.TruncatedOutputError, errors.BenchmarkOutputError)
    assert issubclass(errors.BenchmarkOutputError, ValueError)
    assert not issubclass(errors.BenchmarkError, errors.AdbError)


@pytest.mark.parametrize("error, advice", [
    (errors.AdbNotFoundError("adb"), "put its folder on PATH"),
    (errors.NoDeviceError(), "USB debugging"),
    (errors.MultipleDevicesError(["A", "B"]), "pass --serial"),
    (errors.DeviceUnauthorizedError("R58M"), "accept the USB debugging prompt on the phone"),
    (errors.DeviceOfflineError("R58M"), "replug the cable"),
    (errors.DeviceLost("R58M", "benchmarking m.tflite"), "results measured before"),
    (errors.PushError("R58M", "m", "/data/local/tmp/m", "x"), "df -h /data/local/tmp"),
    (errors.BenchmarkBinaryMissingError("R58M", "/data/local/tmp/benchmark_model"),
     "android_bench/README.md"),
    (errors.WrongAbiError("R58M", "x86_64", ["arm64-v8a"]), "android_aarch64_benchmark_model"),
    (errors.BenchmarkKilledError("R58M", "m.tflite", 9), "low-memory killer"),
    (errors.BenchmarkKilledError("R58M", "m.tflite", 7), "signal 7"),
])
def test_messages_name_the_device_and_the_remedy(error, advice):
    assert advice in str(error)
    if error.serial:
        assert error.serial in str(error)
