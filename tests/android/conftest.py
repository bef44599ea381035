"""Fixtures of the Android harness tests: a fake adb first on PATH, with fake phones."""

from __future__ import annotations

import pytest

from tests.android.fake_phone import FakeAdb


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> FakeAdb:
    """A fake adb on PATH with no phone plugged in yet (add them with ``add_phone``)."""
    fake = FakeAdb(tmp_path / "fakeadb")
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    for key in ("MOBILESEG_BENCHMARK_MODEL", "MOBILESEG_ANDROID_BENCH_DIR"):
        monkeypatch.delenv(key, raising=False)  # the user's own settings stay out of tests
    return fake


@pytest.fixture
def tflite_models(tmp_path) -> list[str]:
    """Two small files standing for .tflite models (the fake phone only checks they exist)."""
    paths = []
    for name, size in (("seg_a.tflite", 3000), ("seg_b.tflite", 5000)):
        path = tmp_path / "models" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"TFL3" + bytes(range(256)) * (size // 256))
        paths.append(str(path))
    return paths
