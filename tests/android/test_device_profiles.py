"""android_bench/devices.yaml: every entry valid, and phones matched to their big cores."""

from __future__ import annotations

import pytest

from mobileseg.android.device_profiles import (SocProfile, android_bench_dir, find_profile,
                                               load_profiles)
from tests.android.fake_phone import PRESETS


def test_every_entry_loads_with_a_hex_mask():
    profiles = load_profiles()
    assert len(profiles) >= 6
    for profile in profiles:
        assert int(profile.big_core_mask, 16) > 0 and profile.cores
        # A big-core mask leaves out at least the LITTLE cluster's first core (cpu0).
        assert int(profile.big_core_mask, 16) & 1 == 0, profile.name


@pytest.mark.parametrize("preset, mask, name", [
    ("pixel7", "f0", "Google Tensor G2"),
    ("galaxy_s23", "f8", "Qualcomm Snapdragon 8 Gen 2 (SM8550)"),
])
def test_known_phones(preset, mask, name):
    profile = find_profile(PRESETS[preset]["props"], load_profiles())
    assert (profile.big_core_mask, profile.name) == (mask, name)


def test_matching_by_board_when_ro_soc_model_is_absent():
    # Android 11 and older have no ro.soc.model: the board platform still identifies it.
    assert find_profile({"ro.board.platform": "zuma"}, load_profiles()).big_core_mask == "1f0"
    assert find_profile({"ro.board.platform": "MT6983"}, load_profiles()).name.startswith(
        "MediaTek Dimensity 9000")


def test_unknown_phone():
    assert find_profile(PRESETS["redmi_k50"]["props"], load_profiles()) is None


def test_model_entry_wins_when_listed_first():
    profiles = [SocProfile("odd Pixel 7", "c0", model=("Pixel 7",))] + load_profiles()
    assert find_profile(PRESETS["pixel7"]["props"], profiles).big_core_mask == "c0"


@pytest.mark.parametrize("text, message", [
    ("version: 2\nsocs: []\n", "expected 'version: 1'"),
    ("version: 1\nsocs:\n  - {name: x, big_core_mask: f0, soc_model: [A], colour: red}\n",
     "unknown keys \\['colour'\\]"),
    ("version: 1\nsocs:\n  - {name: x, big_core_mask: fz, soc_model: [A]}\n", "not a non-zero"),
    ("version: 1\nsocs:\n  - {name: x, big_core_mask: f0}\n", "none of soc_model"),
])
def test_bad_files_are_rejected_with_the_entry_named(tmp_path, text, message):
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_profiles(path)


def test_bench_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILESEG_ANDROID_BENCH_DIR", str(tmp_path))
    assert android_bench_dir() == tmp_path
