"""The shipped data files and their resolver: a checkout's paths, shipped paths and short names, from
any working folder, through every reader of a space, genotype or profile flag."""

from pathlib import Path

import pytest

from mobileseg.shipped_files import ANDROID_BENCH, PROFILES, REFERENCES, SHIPPED, SPACES, shipped_names, shipped_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_checkout_links_its_data_folders_to_the_one_shipped_copy():
    for name, folder in (("search_space", SPACES), ("export", PROFILES), ("android_bench", ANDROID_BENCH)):
        assert (ROOT / name).is_symlink(), f"{name} at the checkout's root should link into mobileseg/shipped"
        assert (ROOT / name).resolve() == folder.resolve()
    assert (ROOT / "search_space" / "references" / "seaformer_tiny.yaml").is_file()


def test_every_shipped_file_is_found_by_its_checkout_path_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = [path for path in SHIPPED.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert len(files) > 15
    for path in files:
        relative = path.relative_to(SHIPPED)
        assert not relative.exists()
        assert shipped_path(relative, "genotype") == path


@pytest.mark.parametrize("kind, value, expected", [
    ("space", "default", SPACES / "default.yaml"),
    ("space", "demo.yaml", SPACES / "demo.yaml"),
    ("genotype", "seaformer_tiny", REFERENCES / "seaformer_tiny.yaml"),
    ("genotype", "segformer_b0.yaml", REFERENCES / "segformer_b0.yaml"),
    ("genotype", "keras_hub_segformer_b0", SPACES / "external" / "keras_hub_segformer_b0.yaml"),
    ("profile", "cpu-int8", PROFILES / "cpu-int8.yaml"),
])
def test_a_short_name_finds_the_shipped_file_of_its_kind(tmp_path, monkeypatch, kind, value, expected):
    monkeypatch.chdir(tmp_path)
    assert shipped_path(value, kind) == expected


@pytest.mark.parametrize("kind, value", [
    ("genotype", "default"),  # a space, not a genotype
    ("space", "seaformer_tiny"),  # a genotype, not a space
    ("genotype", "no_such_network"),
    ("genotype", "runs/x/arch.yaml"),
    ("genotype", "search_space/references/no_such_network.yaml"),
    ("genotype", "search_space/../../cli.py"),  # no way out of the data folder
    ("genotype", "/search_space/references/seaformer_tiny.yaml"),
])
def test_anything_else_is_left_as_given_for_the_readers_own_error(tmp_path, monkeypatch, kind, value):
    monkeypatch.chdir(tmp_path)
    assert shipped_path(value, kind) == Path(value)


def test_a_file_in_the_working_folder_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search_space").mkdir()
    (tmp_path / "search_space" / "demo.yaml").write_text("name: mine\n")
    (tmp_path / "seaformer_tiny").write_text("name: mine\n")
    assert shipped_path("search_space/demo.yaml", "space") == Path("search_space/demo.yaml")
    assert shipped_path("seaformer_tiny", "genotype") == Path("seaformer_tiny")
    with pytest.raises(ValueError, match="unknown kind of shipped file 'spaces'"):
        shipped_path("default", "spaces")


def test_the_names_listed_are_the_files_shipped():
    assert shipped_names("space") == sorted(path.stem for path in SPACES.glob("*.yaml"))
    assert {"seaformer_tiny", "mobilenetv3_small_lraspp", "keras_hub_segformer_b0"} <= set(shipped_names("genotype"))
    assert shipped_names("profile") == sorted(path.stem for path in PROFILES.glob("*.yaml"))


def test_every_reader_of_a_space_genotype_or_profile_flag_resolves_shipped_names(tmp_path, monkeypatch):
    from absl import flags

    from mobileseg import pipeline
    from mobileseg.arch import schema_io
    from mobileseg.arch.space import SearchSpace
    from mobileseg.deploy.profiles import load_profile
    from mobileseg.pipeline_settings import settings_from_flags
    from mobileseg.search.reference_choice import parse_references

    monkeypatch.chdir(tmp_path)
    assert schema_io.load("search_space/references/seaformer_tiny.yaml") == schema_io.load(
        REFERENCES / "seaformer_tiny.yaml")
    assert schema_io.load("mobilenetv3_small_lraspp").name == "mobilenetv3_small_lraspp"
    assert SearchSpace.load("demo").tree == SearchSpace.load(SPACES / "demo.yaml").tree
    assert SearchSpace.load("search_space/default.yaml").source == str(SPACES / "default.yaml")
    assert load_profile("export/gpu-fp16.yaml") == load_profile("gpu-fp16")
    assert parse_references("seaformer_tiny,search_space/references/segformer_b0.yaml").files == (
        REFERENCES / "seaformer_tiny.yaml", REFERENCES / "segformer_b0.yaml")
    with pytest.raises(ValueError, match="no such file: 'no_such_network'"):
        parse_references("seaformer_tiny,no_such_network")
    with pytest.raises(schema_io.GenotypeError, match="^no_such_network: "):
        schema_io.load("no_such_network")

    fv = flags.FlagValues()
    pipeline.define_flags(fv)
    fv(["pipeline", "--space", "demo", "--data", "synthetic:8", "--run_dir", "r", "--target_latency_ms", "1"])
    assert settings_from_flags(fv, ["pipeline"]).space == SPACES / "demo.yaml"
