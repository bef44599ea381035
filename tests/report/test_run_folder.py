"""What a run folder holds, read for the report: a folder that is not a run is refused; damaged files
are left out and named, never fatal."""

import json

import pytest

from mobileseg.report.run_folder import NotARunError, open_run


def test_a_searched_run_is_read_whole(searched_run):
    run = open_run(searched_run)
    assert run.problems == []
    assert run.pareto["chosen"]["trial"] >= 0 and run.genotype.name.startswith("demo_trial")
    assert run.summary is None and run.export_report is None and run.bench is None
    assert run.setting("data") == "synthetic:8" and run.file("study.db") is not None and run.file("model.keras") is None


def test_damaged_files_are_left_out_and_named(tmp_path):
    (tmp_path / "config.yaml").write_text("- a list, not a mapping\n")
    (tmp_path / "pareto.json").write_text('{"front": [')  # cut short
    (tmp_path / "arch.yaml").write_text("name: x\nbranches: []\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "local.json").write_text(json.dumps({"devices": []}))
    run = open_run(tmp_path)
    assert run.config == {} and run.pareto is None and run.genotype is None and run.bench == {"devices": []}
    assert len(run.problems) == 3
    for name in ("config.yaml", "pareto.json", "arch.yaml"):
        assert any(name in problem for problem in run.problems), (name, run.problems)


@pytest.mark.parametrize("make", [lambda p: p / "none", lambda p: p])
def test_a_folder_without_a_run_is_refused(tmp_path, make):
    (tmp_path / "model.keras").write_bytes(b"")  # a model alone does not make a run
    with pytest.raises(NotARunError, match="no such folder|not a run folder"):
        open_run(make(tmp_path))
