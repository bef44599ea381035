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
