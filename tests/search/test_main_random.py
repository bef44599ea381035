"""``python -m mobileseg.search --strategy random``: latency stage, draws, outputs, no supernet; with
``--random_score supernet`` the supernet scores them (and resumes); bad input."""

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


def supernet_command(folder, run_dir, *extra):
    return [*command(folder, run_dir, "--target_latency_ms", "2.2", "--random_score", "supernet", "--supernet_epochs",
                     "1", "--steps_per_epoch", "2", "--batch_size", "2", "--calib_batches", "1", "--val_images", "2"),
            *extra]


def test_random_with_weight_sharing_scores_its_networks_with_the_supernet_and_resumes(files):
    run_dir = files / "supernet_run"
    code, out, err = run_cli(*supernet_command(files, run_dir))
    assert code == 0, err
    assert (run_dir / "supernet").is_dir() and not (run_dir / "study.db").exists()
    assert list(state(run_dir)["stages"]) == ["latency", "supernet", "random"]
    report = json.loads((run_dir / "pareto.json").read_text())
    scores = json.loads((run_dir / "random_scores.json").read_text())
    assert report["study"]["scored"] == len(report["front"]) == len(scores["scores"]) == 6  # population x generations
    assert scores["proxy"]["supernet_epoch"] == 1
    assert all(row["feasible"] and row["miou"] == scores["scores"][row["key"]] for row in report["front"])
    assert report["chosen"]["miou"] == max(scores["scores"].values())
    chosen = next(row for row in report["front"] if row["trial"] == report["chosen"]["trial"])
    assert genotype_key(schema_io.load(run_dir / "arch.yaml")) == chosen["key"]
    assert "best proxy mIoU of the 6 random networks" in out
    code, _, err = run_cli(*supernet_command(files, run_dir, "--stage", "search"))  # scores are read, not redone
    assert code == 0, err
    assert state(run_dir)["stages"]["random"]["networks_scored"] == 0
    assert json.loads((run_dir / "pareto.json").read_text())["chosen"] == report["chosen"]
    before = snapshot(run_dir)
    code, _, err = run_cli(*supernet_command(files, run_dir, "--stage", "search", "--val_images", "1"))
    assert code == 2 and "random_scores.json: scores of another supernet or proxy (val_images 2 -> 1)" in err
    assert snapshot(run_dir) == before


def test_random_score_is_only_for_random(files):
    run_dir = files / "not_random"
    code, _, err = run_cli(*command(files, run_dir, "--target_latency_ms", "2.2", "--random_score", "supernet",
                                    "--strategy", "evolutionary"))
    assert code == 2 and "--random_score supernet: only for --strategy random" in err
    assert not run_dir.exists()
