"""``python -m mobileseg.search --strategy differentiable``: the outputs, resume, lambda, bad input.

Kept apart from test_main.py (the evolutionary strategy) so each file stays under a minute: a space of
three cells and an optional branch at 32x32, ``synthetic:12`` (10 training images: halves of 5), epochs
of 2 steps, and a made-up latency table read through ``table:`` so nothing is measured.
"""

import json
import shutil
from pathlib import Path

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.latency.block_model import buildable
from mobileseg.run.run_config import read_config
from mobileseg.search.differentiable_folder import FOLDER
from mobileseg.training.loop import CHECKPOINT
from tests.search.latency_tables import fake_table
from tests.search.test_main import run_cli, snapshot, state

SPACE = """
name: tiny_differentiable
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: conv, width: {choice: [8, 16]}, stride: 2}
      - choice: [{op: conv, width: 16, kernel: {choice: [1, 3]}}, {op: skip}]
  - choice:
      - null
      - {name: low, source: {branch: main, cell: -1}, cells: [{op: conv, width: 16, stride: 2}]}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: 16}
"""
DATA = "synthetic:12,size=32x32"
OUTPUTS = ["config.yaml", "search_state.json", "pareto.json", "pareto.png", "arch.yaml",
           f"{FOLDER}/{CHECKPOINT}", f"{FOLDER}/state.json"]


def command(folder: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--strategy", "differentiable", "--space", str(folder / "space.yaml"), "--data", DATA,
            "--run_dir", str(run_dir), "--input_size", "32x32", "--latency_backend",
            f"table:{folder / 'table.json'}", "--steps_per_epoch", "2", "--batch_size", "2", "--calib_batches", "1",
            "--val_images", "2", "--references", "none", "--target_latency_ms", "0.5", "--noprogress", *extra]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("differentiable_cli")
    (folder / "space.yaml").write_text(SPACE)
    fake_table(SearchSpace.load(folder / "space.yaml"), (32, 32), 8, path=folder / "table.json")
    return folder


@pytest.fixture(scope="module")
def finished(files):
    """A run of 1 epoch, then the same command with 2 epochs (it resumes): the folder and both stdouts."""
    run_dir = files / "run"
    first = run_cli(*command(files, run_dir, "--supernet_epochs", "1"))
    assert first[0] == 0, first[2]
    second = run_cli(*command(files, run_dir, "--supernet_epochs", "2"))
    assert second[0] == 0, second[2]
    return run_dir, first[1], second[1]


def test_a_differentiable_search_writes_the_evolutionary_outputs_and_resumes_per_epoch(finished, files):
    run_dir, first, second = finished
    assert all((run_dir / name).is_file() for name in OUTPUTS), sorted(snapshot(run_dir))
    assert not (run_dir / "supernet").exists() and not (run_dir / "study.db").exists()
    config = read_config(run_dir)["search"]
    assert (config["strategy"], config["gcn"], config["supernet_epochs"]) == ("differentiable", True, 2)
    stages = state(run_dir)["stages"]
    assert list(stages) == ["latency", "differentiable", "outputs"] and stages["latency"]["measured"] == 0
    assert (stages["differentiable"]["epoch"], stages["differentiable"]["trained_now"]) == (2, 1)
    assert "epoch 1/1:" in first and "epoch 1/" not in second and "epoch 2/2:" in second

    report = json.loads((run_dir / "pareto.json").read_text())
    assert report["study"]["name"] == "differentiable (GCN)" and report["study"]["trials"] == 2
    assert report["study"]["storage"] == str(run_dir / FOLDER / CHECKPOINT)
    assert report["target_latency_ms"] == 0.5 and report["latency_source"].startswith("table: ")
    arch = schema_io.load(run_dir / "arch.yaml")
    assert arch.name == f"tiny_differentiable_trial{report['chosen']['trial']}"
    SearchSpace.load(files / "space.yaml").encode(arch)  # a network of the space...
    assert buildable(arch, (32, 32), 8)  # ...that train can build
    assert (run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    log = json.loads((run_dir / FOLDER / "state.json").read_text())["last"]
    assert log["epoch"] == 2 and log["architecture"] is True  # warm-up: 2 // 4 = 0 epochs
    assert log["latency_ms"] > 0.5 and log["next_latency_weight"] > log["latency_weight"]  # over target: lambda up


def test_the_same_command_again_trains_nothing_whatever_the_stage(finished, files, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    checkpoint = (run_dir / FOLDER / CHECKPOINT).read_bytes()
    code, out, err = run_cli(*command(files, run_dir, "--supernet_epochs", "2", "--stage", "supernet"))
    assert code == 0, err
    assert "differentiable: already trained, 2 in all" in out and "epoch 2/2:" not in out
    assert list(state(run_dir)["stages"]) == ["latency", "differentiable", "outputs"]  # one stage for it
    assert (run_dir / FOLDER / CHECKPOINT).read_bytes() == checkpoint
    assert json.loads((run_dir / "pareto.json").read_text())["study"]["trials"] == 2


@pytest.mark.parametrize("change, message", [
    (["--nogcn"], "its differentiable search ran with other settings (gcn True -> False)"),
    (["--batch_size", "3"], "its differentiable search ran with other settings (batch_size 2 -> 3)"),
    (["--precision", "mixed_bfloat16"], "its differentiable search ran with other settings "
                                        "(precision 'float32' -> 'mixed_bfloat16')"),
    (["--data", "synthetic:12,size=32x32,seed=1"], "holds a search of another space, data set or input size"),
])
def test_a_folder_holding_another_differentiable_search_is_refused_untouched(finished, files, tmp_path, change,
                                                                            message):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    before = snapshot(run_dir)
    code, _, err = run_cli(*command(files, run_dir, "--supernet_epochs", "2"), *change)
    assert code == 2 and message in err, err
    assert snapshot(run_dir) == before


def test_halves_smaller_than_a_batch_are_bad_input(files, tmp_path):
    code, _, err = run_cli(*command(files, tmp_path / "run", "--batch_size", "6"))
    assert code == 2 and "--batch_size 6: larger than half of the 10 training images" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damaged, message", [
    (f"{FOLDER}/{CHECKPOINT}", "checkpoint.npz: damaged (File is not a zip file); delete {folder} to run the "
                               "differentiable search again from the start, or put back a good copy"),
    (f"{FOLDER}/state.json", "state.json: damaged, not JSON ("),
])
def test_a_damaged_checkpoint_or_state_exits_2_naming_it_and_what_to_do(finished, files, tmp_path, damaged, message):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    path = run_dir / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, _, err = run_cli(*command(files, run_dir, "--supernet_epochs", "2"))
    assert code == 2 and str(path) in err and message.format(folder=run_dir / FOLDER) in err, err
    assert "Traceback" not in err
