"""A backend's measurer, and a saved table refused with a setting or device other than its own."""

import pytest

from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.measurers import device_measurer, open_measured_table
from mobileseg.latency.table import DeviceMismatchError, LatencyTable

TIMING = {"serial": None, "adb": "adb", "warmup": 1, "num_runs": 3, "min_runs": 3, "max_runs": 5,
          "max_seconds": 1.0}


def local(threads, clock):
    return device_measurer("local", threads, clock, **TIMING)


def test_local_measurer_has_this_cpus_fingerprint_and_refuses_a_clock_it_cannot_keep():
    measurer, fingerprint = local(1, "thread_cpu")
    assert fingerprint == local_fingerprint(1, clock="thread_cpu")
    assert measurer.keywords["threads"] == 1 and measurer.keywords["clock"] == "thread_cpu"
    with pytest.raises(ValueError, match="needs --threads 1, got 2"):
        local(2, "thread_cpu")
    with pytest.raises(ValueError, match="--backend adb times with benchmark_model's wall clock"):
        device_measurer("adb", 1, "thread_cpu", **TIMING)


def test_a_table_opens_with_its_own_setting_only(tmp_path):
    path = tmp_path / "table.json"
    LatencyTable(local_fingerprint(1, clock="wall"), path=path).save()
    given = {"quantization": "int8", "threads": 4, "threads_given": False, "clock_given": None,
             "backend": "local"}
    table, _, fingerprint = open_measured_table(str(path), local, **given)
    assert fingerprint == local_fingerprint(1, clock="wall") and len(table) == 0
    with pytest.raises(ValueError, match="holds int8 entries; pass --quantization int8"):
        open_measured_table(str(path), local, **{**given, "quantization": "fp16"})
    with pytest.raises(ValueError, match=r"measured with 1 thread\(s\), not --threads 4"):
        open_measured_table(str(path), local, **{**given, "threads_given": True})
    with pytest.raises(ValueError, match="timed with the wall clock, not --clock thread_cpu"):
        open_measured_table(str(path), local, **{**given, "clock_given": "thread_cpu"})

    def other_device(threads, clock):
        return None, {**local_fingerprint(threads, clock=clock), "cpu": "another cpu"}

    with pytest.raises(DeviceMismatchError, match="another device or setting than --backend local"):
        open_measured_table(str(path), other_device, **given)
