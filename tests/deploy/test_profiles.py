import pytest

from mobileseg.deploy.profiles import PROFILE_DIR, Profile, ProfileError, load_profile


def test_the_shipped_profiles_load_by_name_and_by_path():
    names = sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))
    assert {"cpu-int8", "gpu-fp16", "cpu-fp32"} <= set(names)
    for name in names:
        assert load_profile(name) == load_profile(str(PROFILE_DIR / f"{name}.yaml"))
    cpu = load_profile("cpu-int8")
    assert (cpu.mode, cpu.output, cpu.input, cpu.quantization) == ("int8", "mask", "uint8", "auto")
    assert (cpu.checks.max_partitions, cpu.checks.min_speedup_vs_fp32, cpu.checks.max_miou_drop) == (1, 1.8, 0.5)
    gpu = load_profile("gpu-fp16")
    assert (gpu.mode, gpu.input, gpu.checks.gpu_compatible) == ("fp16", "float32", True)


@pytest.mark.parametrize("text, message", [
    ("name: x\nmode: int8\nchecks: {max_partition: 1}\n",
     "checks.max_partition: unknown key; expected one of builtin_only, max_partitions"),
    ("name: x\nmode: int8\nouptut: mask\n", "ouptut: unknown key; expected one of name, description, mode"),
    ("name: x\nmode: int4\n", "mode: 'int4' is not allowed; expected one of fp32, fp16, int8"),
    ("name: x\n", "mode: missing key"),
    ("name: x\nmode: int8\ninput: float32\n", "input: an int8 file takes uint8 or int8 pixels, not float32"),
    ("name: x\nmode: fp16\nquantization: qat\n", "quantization: only an int8 profile is quantized"),
    ("name: x\nmode: int8\nchecks: {max_partitions: 0}\n", "checks.max_partitions: expected an integer >= 1, got 0"),
    ("name: x\nmode: int8\nchecks: {builtin_only: 'yes'}\n", "checks.builtin_only: expected bool, got 'yes'"),
    ("name: x\nmode: int8\nchecks: {max_size_mb: true}\n", "checks.max_size_mb: expected a number >= 0.0"),
    ("- a list\n", "expected a mapping of profile keys, got list"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_a_bad_profile_is_a_clear_error_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as error:
        load_profile(str(path))
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_a_profile_that_is_not_utf8_or_hostile_is_named(tmp_path):
    path = tmp_path / "phone.yaml"
    path.write_bytes(b"name: t\xe9l\xe9phone\nmode: int8\n")
    with pytest.raises(ProfileError, match=rf"^{path}: not UTF-8 text \(byte 0xe9 on line 1\); save it as UTF-8$"):
        load_profile(str(path))
    path.write_text("name: x\nmode: &m [" + ", ".join(["int8"] * 1000) + "]\nchecks: {max_partitions: [" + ", ".join(
        ["*m"] * 1000) + "]}\n")  # a million values once expanded
    with pytest.raises(ProfileError, match=rf"^{path}: more than 100000 values once its aliases"):
        load_profile(str(path))
    path.write_text("name: x\nmode: [" + ", ".join(["int8"] * 5000) + "]\n")
    with pytest.raises(ProfileError) as error:
        load_profile(str(path))
    assert str(error.value).startswith(f"{path}: mode: ['int8', 'int8',") and len(str(error.value)) < 400


def test_an_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"no-such: no such profile file \(profiles in .*: cpu-fp32, cpu-int8"):
        load_profile("no-such")


def test_to_dict_keeps_only_the_checks_that_are_set():
    profile = Profile.from_dict({"name": "x", "mode": "fp32", "checks": {"builtin_only": True}}, "x.yaml")
    assert profile.to_dict()["checks"] == {"builtin_only": True}
