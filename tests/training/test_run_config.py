"""The run folder's config.yaml: a step's section replaces only that section; a malformed file is refused."""

import dataclasses
import json

import pytest

from mobileseg.training.errors import TrainingError
from mobileseg.training.run_config import read_config, record_config
from tests.training.test_trainer import config


def test_config_sections_of_other_steps_are_kept(tmp_path):
    (tmp_path / "config.yaml").write_text("search:\n  budget_ms: 12\n")
    record_config(tmp_path, "train", {"epochs": 3})
    assert read_config(tmp_path) == {"search": {"budget_ms": 12}, "train": {"epochs": 3}}
    (tmp_path / "config.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(TrainingError, match="config.yaml"):
        record_config(tmp_path, "train", {"epochs": 3})
    assert json.dumps(dataclasses.asdict(config()))  # the default record is JSON-ready
