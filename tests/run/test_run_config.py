"""The run folder's config.yaml: a step's section replaces only that section; a malformed file is refused
with the caller's error, and the resume rule compares only what an earlier run recorded."""

import dataclasses
import json

import pytest

from mobileseg.bounded_yaml import Limits
from mobileseg.run.exit_codes import EXIT_BAD_INPUT, BadInput
from mobileseg.run.run_config import ResumeRefused, read_config, record_config, resume_changes
from mobileseg.text_files import TextFileError
from mobileseg.training.errors import TrainingError
from tests.training.test_trainer import config


def test_config_sections_of_other_steps_are_kept(tmp_path):
    (tmp_path / "config.yaml").write_text("search:\n  budget_ms: 12\n")
    record_config(tmp_path, "train", {"epochs": 3}, error=TrainingError)
    assert read_config(tmp_path, error=TrainingError) == {"search": {"budget_ms": 12}, "train": {"epochs": 3}}
    (tmp_path / "config.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(TrainingError, match="config.yaml"):
        record_config(tmp_path, "train", {"epochs": 3}, error=TrainingError)
    assert json.dumps(dataclasses.asdict(config()))  # the default record is JSON-ready


@pytest.mark.parametrize("text, problem", [
    (b"- not\n- a mapping\n", "config.yaml: expected a mapping of step sections, got list"),
    (b"search: [unclosed\n", "config.yaml: not valid YAML"),
    (b"search: caf\xe9\n", "config.yaml: not UTF-8 text"),
])
@pytest.mark.parametrize("error", [TrainingError, TextFileError, BadInput])
def test_a_damaged_file_raises_the_callers_error_and_is_left_as_it_was(tmp_path, text, problem, error):
    (tmp_path / "config.yaml").write_bytes(text)
    with pytest.raises(error, match=problem):
        read_config(tmp_path, error=error)
    with pytest.raises(error, match=problem):
        record_config(tmp_path, "train", {"epochs": 1}, error=error)
    assert (tmp_path / "config.yaml").read_bytes() == text


def test_a_missing_or_empty_file_has_no_sections(tmp_path):
    assert read_config(tmp_path / "none", error=TrainingError) == {}
    (tmp_path / "config.yaml").write_text("")
    assert read_config(tmp_path, error=TrainingError) == read_config(tmp_path, error=TextFileError, limits=Limits()) == {}


def test_limits_bound_what_a_reader_from_elsewhere_accepts(tmp_path):
    (tmp_path / "config.yaml").write_text(f"train: {{command: {'x' * 2000}}}\n")
    assert read_config(tmp_path, error=TrainingError)["train"]["command"] == "x" * 2000
    with pytest.raises(TextFileError, match="config.yaml"):
        read_config(tmp_path, error=TextFileError, limits=Limits(max_string=1000))


def test_values_are_stored_as_plain_data_and_sections_keep_their_order(tmp_path):
    record_config(tmp_path, "pipeline", {"input_size": (8, 16), "space": "demo.yaml"}, error=TrainingError)
    record_config(tmp_path, "search", {"seed": 0}, error=TrainingError)
    record_config(tmp_path, "pipeline", {"input_size": (4, 4)}, error=TrainingError)
    text = (tmp_path / "config.yaml").read_text()
    assert text.index("pipeline:") < text.index("search:") and "!!python" not in text
    assert read_config(tmp_path, error=TrainingError) == {"pipeline": {"input_size": [4, 4]}, "search": {"seed": 0}}


def test_only_the_settings_an_earlier_run_recorded_are_compared():
    recorded = {"space_sha256": "ab", "data": "synthetic:8", "input_size": None}
    assert resume_changes(recorded, {"space_sha256": "ab", "data": "synthetic:8", "input_size": [8, 8],
                                     "seed": 3}) == {}
    assert resume_changes(recorded, {"data": "synthetic:9", "space_sha256": "cd"}) == {
        "data": ("synthetic:8", "synthetic:9"), "space_sha256": ("ab", "cd")}
    assert resume_changes({}, {"data": "synthetic:9"}) == {}


def test_a_refused_resume_is_bad_input():
    refused = ResumeRefused("--data synthetic:9: runs/x holds a run on synthetic:8; use a new --run_dir")
    assert isinstance(refused, BadInput) and refused.exit_code == EXIT_BAD_INPUT
