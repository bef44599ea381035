"""``python -m mobileseg.search --strategy random``: latency stage, draws, outputs, no supernet, bad input."""

import json

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.run.fingerprint import genotype_key
from mobileseg.run.run_config import read_config
from tests.search.latency_tables import fake_table
from tests.search.test_main import run_cli, snapshot, state
from tests.search.test_main_differentiable import DATA, SPACE


def command(folder, run_dir, *extra):
    return ["--strategy", "random", "--space", str(folder / "space.yaml"), "--data", DATA, "--run_dir",
            str(run_dir), "--input_size", "32x32", "--latency_backend", f"table:{folder / 'table.json'}",
            "--population", "3", "--generations", "2", "--references", "none", "--noprogress", *extra]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random_cli")
    (folder / "space.yaml").write_text(SPACE)
    fake_table(SearchSpace.load(folder / "space.yaml"), (32, 32), 8, path=folder / "table.json")
    return folder


def test_a_random_search_writes_the_outputs_without_a_supernet(files):
    run_dir = files / "run"
    code, out, err = run_cli(*command(files, run_dir, "--target_latency_ms", "2.2"))
    assert code == 0, err
    assert {"pareto.json", "pareto.png", "arch.yaml", "config.yaml", "search_state.json"} <= {str(p) for p in snapshot(run_dir)}
    assert not (run_dir / "supernet").exists() and not (run_dir / "study.db").exists()
    assert list(state(run_dir)["stages"]) == ["latency", "random"]
    assert read_config(run_dir)["search"]["strategy"] == "random"
    report = json.loads((run_dir / "pareto.json").read_text())
    assert report["strategy"] == "random" and report["study"]["trials"] == 6
    feasible = [row["latency_ms"] for row in report["front"]]
    assert report["chosen"]["latency_ms"] == max(feasible) <= 2.2
    assert 0 < len(feasible) < 6
    chosen = next(row for row in report["front"] if row["trial"] == report["chosen"]["trial"])
    assert genotype_key(schema_io.load(run_dir / "arch.yaml")) == chosen["key"]
    assert "chosen: network" in out
    again = run_cli(*command(files, run_dir, "--target_latency_ms", "2.2"))  # the same seed: the same network
    assert again[0] == 0 and json.loads((run_dir / "pareto.json").read_text())["chosen"] == report["chosen"]


def test_random_needs_a_target(files):
    run_dir = files / "no_target"
    code, _, err = run_cli(*command(files, run_dir))
    assert code == 2 and "--strategy random: needs --target_latency_ms" in err
    assert not run_dir.exists()
