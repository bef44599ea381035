"""The device fingerprint: what it reads and which fields decide a mismatch."""

import json

from mobileseg.latency import device


def test_local_fingerprint_fields():
    fingerprint = device.local_fingerprint(threads=4)
    assert set(device.MEASUREMENT_FIELDS) <= set(fingerprint)
    assert fingerprint["threads"] == 4 and fingerprint["delegate"] == "xnnpack"
    assert fingerprint["runtime"] == "ai-edge-litert" and fingerprint["runtime_version"]
    assert fingerprint["tensorflow"] and fingerprint["cores"] >= 1
    assert json.loads(json.dumps(fingerprint)) == fingerprint
    assert "threads" not in device.local_fingerprint(threads=None)


def test_mismatch_lists_only_measurement_fields():
    a = device.local_fingerprint(threads=1)
    b = dict(a, threads=2, runtime_version="9.9", python="2.7", system="Plan9")
    mismatch = device.fingerprint_mismatch(a, b)
    assert [line.split(":")[0] for line in mismatch] == ["runtime_version", "threads"]
    assert "threads: 1 != 2" in mismatch
    assert device.fingerprint_mismatch(a, dict(a)) == []


def test_the_clock_is_part_of_the_fingerprint_and_wall_when_unsaid():
    wall = device.local_fingerprint(threads=1)
    cpu = device.local_fingerprint(threads=1, clock="thread_cpu")
    assert wall["clock"] == "wall" and cpu["clock"] == "thread_cpu"
    assert device.fingerprint_mismatch(wall, cpu) == ["clock: 'wall' != 'thread_cpu'"]
    older = {k: v for k, v in wall.items() if k != "clock"}  # a table written before clocks
    assert device.fingerprint_mismatch(older, wall) == []
    assert device.fingerprint_mismatch(older, cpu) == ["clock: 'wall' != 'thread_cpu'"]


def test_phone_fields_decide_a_mismatch():
    pixel = {"kind": "android", "model": "Pixel 7", "soc": "GS201", "id": "A", "threads": 1}
    assert device.fingerprint_mismatch(pixel, dict(pixel, id="B")) == []
    assert device.fingerprint_mismatch(pixel, dict(pixel, model="Pixel 8")) == [
        "model: 'Pixel 7' != 'Pixel 8'"]


def test_two_hosts_with_one_model_name_are_two_devices():
    """A VM's model name ("Intel(R) Xeon(R) Processor") can hide another host: the CPU identity decides."""
    here = device.local_fingerprint(threads=1)
    assert here["cpu_id"]
    other_host = dict(here, cpu_id="GenuineIntel family 6 model 106 stepping 6; L2 1280K; avx512f avx512_vnni")
    assert device.fingerprint_mismatch(here, other_host) == [f"cpu_id: {here['cpu_id']!r} != {other_host['cpu_id']!r}"]
    from mobileseg.latency.cache import device_id

    assert device_id(here) != device_id(other_host)


def test_a_table_from_before_the_cpu_identity_is_not_refused_for_it():
    here = device.local_fingerprint(threads=1)
    older = {k: v for k, v in here.items() if k != "cpu_id"}
    assert device.fingerprint_mismatch(older, here) == [] == device.fingerprint_mismatch(here, older)
    assert device.fingerprint_mismatch(older, dict(here, cpu="Other CPU")) == ["cpu: %r != 'Other CPU'" % here["cpu"]]
