"""``python -m mobileseg.search``: every output, resume, bad input (exit 2, nothing written), the adb backend.

Tiny settings: a space of 8 blocks at 32x32, ``synthetic:8`` (6 training images), 4 networks a
generation, supernet epochs of 2 steps.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from absl import flags

from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.latency.device import local_fingerprint
from mobileseg.latency.space_blocks import enumerate_space
from mobileseg.latency.table import LatencyTable
from mobileseg.run.run_config import read_config
from mobileseg.run.run_dir import RunDir
from mobileseg.run_lock import hold
from mobileseg.search import __main__ as search_cli
from mobileseg.search import search_flags
from tests.android.conftest import fake_adb  # noqa: F401 (the fixture)
from tests.android.fake_phone import PRESETS
from tests.data.fake_layouts import make_camvid

REPO = Path(__file__).resolve().parents[2]
SPACE = """
name: tiny_search
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: conv, width: {choice: [8, 16]}, stride: 2}
      - choice: [{op: conv, width: 16, kernel: {choice: [1, 3]}}, {op: skip}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""
# a network of the space (scored by the supernet) and one outside it whose blocks are all the space's
INSIDE = """
name: inside
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 16, stride: 2}, {op: conv, width: 16, kernel: 3}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""
OUTSIDE = """
name: outside
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 16, stride: 2}, {op: conv, width: 16, kernel: 3},
            {op: conv, width: 16, kernel: 1}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""
DATA = "synthetic:8,size=32x32"
PIXEL = PRESETS["pixel7"]["serial"]
PREPARE_COMMANDS, BLOCK_COMMANDS = 5, 5  # adb commands to a phone: prepare(), one block (tests/latency)
OUTPUTS = ["config.yaml", "search_state.json", "latency_table.json", "study.db", "pareto.json", "pareto.png",
           "arch.yaml", "supernet/checkpoint.npz", "supernet/state.json"]


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the command in this process, on flags of its own: (exit code, stdout, stderr)."""
    flag_values = flags.FlagValues()
    search_cli.define_flags(flag_values)
    argv = flag_values(["mobileseg.search", *args])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = search_cli.run(flag_values, argv)
    return code, out.getvalue(), err.getvalue()


def common(folder: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--space", str(folder / "space.yaml"), "--data", DATA, "--run_dir", str(run_dir), "--input_size",
            "32x32", "--population", "4", "--generations", "2", "--supernet_epochs", "2", "--steps_per_epoch", "2",
            "--batch_size", "2", "--calib_batches", "1", "--noprogress", *extra]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / RunDir.SEARCH_STATE).read_text())


def generation_lines(out: str) -> list[str]:
    """``gen I/N`` of each progress line of the search."""
    return [line.split(":")[0] for line in out.splitlines() if line.startswith("gen ")]


def completed_trials(run_dir: Path) -> int:
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{run_dir / 'study.db'}")
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search_cli")
    for name, text in (("space.yaml", SPACE), ("inside.yaml", INSIDE), ("outside.yaml", OUTSIDE)):
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def finished(files):
    """A run folder whose supernet training stopped after 1 of 2 epochs, then the whole search: its stdout."""
    run_dir = files / "run"
    code, _, err = run_cli(*common(files, run_dir, "--stage", "supernet", "--supernet_epochs", "1"))
    assert code == 0, err
    references = f"{files / 'inside.yaml'},{files / 'outside.yaml'}"
    code, out, err = run_cli(*common(files, run_dir, "--references", references))
    assert code == 0, err
    return run_dir, out


def test_a_search_writes_every_output_and_trains_only_the_epochs_left(finished, files):
    run_dir, out = finished
    assert all((run_dir / name).is_file() for name in OUTPUTS), sorted(snapshot(run_dir))
    config = read_config(run_dir)["search"]
    assert set(search_flags.FLAG_NAMES) <= set(config)
    assert (config["input_size"], config["budget"], config["num_classes"], config["output_stride"]) == (
        [32, 32], "demo", 8, 4)
    assert config["search_scale"] == 1.0 and config["storage"] == f"sqlite:///{run_dir.resolve() / 'study.db'}"
    stages = state(run_dir)["stages"]
    assert state(run_dir)["status"] == "finished" and list(stages) == ["latency", "supernet", "search", "outputs"]
    assert (stages["supernet"]["epoch"], stages["supernet"]["trained_now"], stages["supernet"]["steps"]) == (2, 1, 4)
    space_blocks = len(enumerate_space(SearchSpace.load(files / "space.yaml"), (32, 32), 8).signatures)
    table = LatencyTable.load(run_dir / "latency_table.json")
    assert stages["latency"]["measured"] == len(table) == space_blocks == 8
    assert table.fingerprint["cpu"] == local_fingerprint()["cpu"]
    assert (stages["search"]["trials"], stages["search"]["generations"]) == (8, 2) == (completed_trials(run_dir), 2)
    assert 1 <= stages["search"]["networks_scored"] <= 8  # a network asked twice is scored once
    assert generation_lines(out) == ["gen 1/2", "gen 2/2"]
    assert "study search: 8 trials in 2 generations of 4" in out and f"-> {run_dir / 'arch.yaml'}" in out

    report = json.loads((run_dir / "pareto.json").read_text())
    assert report["study"]["trials"] == 8 and report["latency_source"].startswith("local: ")
    inside, outside = report["references"]
    assert (inside["name"], inside["in_space"], outside["name"], outside["in_space"]) == (
        "inside", True, "outside", False)
    assert 0 <= inside["miou"] <= 1 and outside["miou"] is None
    front = {entry["trial"]: entry for entry in report["front"]}
    arch = schema_io.load(run_dir / "arch.yaml")
    assert report["chosen"]["trial"] in front and arch.name == f"tiny_search_trial{report['chosen']['trial']}"
    SearchSpace.load(files / "space.yaml").encode(arch)  # the chosen network is in the space
    assert (run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_command_again_redoes_nothing_and_more_generations_continue_the_study(finished, files, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    checkpoint = (run_dir / "supernet" / "checkpoint.npz").read_bytes()
    references = f"{files / 'inside.yaml'},{files / 'outside.yaml'}"
    code, out, err = run_cli(*common(files, run_dir, "--references", references))
    assert code == 0, err
    stages = state(run_dir)["stages"]
    assert stages["latency"]["measured"] == 0 and stages["supernet"]["trained_now"] == 0
    assert (stages["search"]["new_trials"], stages["search"]["networks_scored"]) == (0, 0)
    assert not generation_lines(out) and "supernet: already trained, 2 in all (4 steps)" in out
    assert (run_dir / "supernet" / "checkpoint.npz").read_bytes() == checkpoint and completed_trials(run_dir) == 8

    code, out, err = run_cli(*common(files, run_dir, "--generations", "3", "--references", "none"))
    assert code == 0, err
    stages = state(run_dir)["stages"]
    assert stages["supernet"]["trained_now"] == 0 and stages["search"]["new_trials"] == 4
    assert completed_trials(run_dir) == 12 and generation_lines(out) == ["gen 3/3"]
    assert json.loads((run_dir / "pareto.json").read_text())["study"]["generations"] == 3


BAD_SPACE = "name: broken\nbranches: 3\nhead: {op: light, inputs: [], width: 8}\n"


@pytest.mark.parametrize("change, message", [
    ({"--space": "{tmp}/missing.yaml"}, "missing.yaml: cannot read"),
    ({"--space": "{tmp}/bad.yaml"}, "bad.yaml"),
    ({"--space": "{tmp}/latin1.yaml"}, "latin1.yaml: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"),
    ({"--data": "camvid:{tmp}/camvid"}, "camvid/train.txt: not UTF-8 text (byte 0xff on line 1)"),
    ({"--data": "camvid:{tmp}/no_camvid"}, "--data camvid:"),
    ({"--data": "synthetic:2,size=32x32"}, "no val images (it has: train)"),
    ({"--input_size": "30x32"}, "--input_size 30x32: height and width must be multiples of 4"),
    ({"--input_size": "big"}, "--input_size: input size 'big' is not HEIGHTxWIDTH"),
    ({"--population": "1"}, "--population 1: must be at least 2"),
    ({"--batch_size": "64"}, "--batch_size 64: larger than the 6 training images"),
    ({"--stage": "search"}, "--stage search: no trained supernet in"),
    ({"--latency_backend": "gpu"}, "--latency_backend gpu: expected local[:FILE], adb[:FILE] or table:FILE"),
    ({"--latency_backend": "table:{tmp}/none.json"}, "--latency_backend table:"),
    ({"--latency_backend": "table:{tmp}/partial.json"}, "the table lacks 7 of the 8 blocks"),
    ({"--serial": "R58M"}, "--serial R58M: only for --latency_backend adb"),
    ({"--clock": "thread_cpu", "--threads": "2"}, "--clock thread_cpu: only for --latency_backend local with --threads 1"),
    ({"--references": "{tmp}/nothing.yaml"}, "--references"),
    ({"--references": "cheapest:x"}, "--references cheapest:x: K must be a positive integer"),
    ({"--storage": "not a url"}, "--storage not a url: not a database URL"),
    ({"--storage": "postgresql://me:secret@127.0.0.1:1/search"},  # no driver, or no server on that port
     "--storage postgresql://me:***@127.0.0.1:1/search: cannot open it"),
])
def test_bad_input_exits_2_and_writes_nothing(files, tmp_path, change, message):
    (tmp_path / "bad.yaml").write_text(BAD_SPACE)
    (tmp_path / "latin1.yaml").write_bytes(SPACE.replace("tiny_search", "r\xe9seau").encode("latin-1"))
    listing = make_camvid(tmp_path / "camvid") / "train.txt"
    listing.write_bytes(b"\xff" + listing.read_bytes())
    partial = LatencyTable(local_fingerprint(), path=tmp_path / "partial.json")
    first = enumerate_space(SearchSpace.load(files / "space.yaml"), (32, 32), 8).signatures[0]
    partial.add(first, {"median_ms": 1.0, "p90_ms": 1.0, "std_ms": 0.0, "min_ms": 1.0, "runs": 9,
                        "xnnpack_partitions": 1, "fallback_ops": []})
    partial.save()
    run_dir = tmp_path / "run"
    args = common(files, run_dir)
    for flag, value in change.items():
        value = value.format(tmp=tmp_path)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert message in err and err.startswith("mobileseg.search: error: ") and "secret" not in err, err
    assert not run_dir.exists()


@pytest.mark.parametrize("change, message", [
    (["--data", "synthetic:8,size=32x32,seed=1"], "holds a search of another space, data set or input size "
                                                   "(data 'synthetic:8,size=32x32' -> 'synthetic:8,size=32x32,seed=1')"),
    (["--input_size", "40x40"], "holds a search of another space, data set or input size"),
    (["--batch_size", "3"], "its supernet was trained with other settings (batch_size 2 -> 3)"),
    (["--population", "6"], "was created with other settings (population 4 -> 6)"),
    (["--calib_batches", "2"], "was scored with other settings (calib_batches 1 -> 2); use a new --study_name"),
    (["--supernet_epochs", "3"], "was scored with other settings (supernet_epoch 2 -> 3)"),
    (["--precision", "mixed_bfloat16"], "its supernet was trained with other settings "
                                        "(precision 'float32' -> 'mixed_bfloat16')"),
])
def test_a_folder_holding_another_search_is_refused_untouched(finished, files, tmp_path, change, message):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    before = snapshot(run_dir)
    code, _, err = run_cli(*common(files, run_dir), *change)
    assert code == 2 and message in err, err
    assert snapshot(run_dir) == before


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damaged, stage, message", [
    ("supernet/checkpoint.npz", "search", "checkpoint.npz: damaged (File is not a zip file); delete {run}/supernet "
                                          "to train the supernet again from the start, or put back a good copy"),
    ("supernet/checkpoint.npz", "all", "checkpoint.npz: damaged (File is not a zip file); delete {run}/supernet"),
    ("supernet/state.json", "all", "state.json: damaged, not JSON ("),
    ("study.db", "all", "study.db: damaged (database disk image is malformed); move it away to run the search "
                        "stage again (the supernet and the latency table are kept), or put back a good copy"),
])
def test_a_damaged_state_file_exits_2_naming_it_and_what_to_do(finished, files, tmp_path, damaged, stage, message):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    truncate(run_dir / damaged)
    before = (run_dir / damaged).read_bytes()
    code, _, err = run_cli(*common(files, run_dir, "--stage", stage, "--references", "none"))
    assert code == 2 and f"{run_dir / damaged.split('/')[0]}" in err and message.format(run=run_dir) in err, err
    assert "Traceback" not in err and (run_dir / damaged).read_bytes() == before


def test_the_advice_for_a_damaged_supernet_state_works(finished, files, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    state_file = run_dir / "supernet" / "state.json"
    truncate(state_file)
    code, _, err = run_cli(*common(files, run_dir, "--references", "none"))
    assert code == 2 and f"{state_file}: damaged, not JSON (" in err and (
        "; delete it and run with --stage all (or supernet) to rewrite it from checkpoint.npz, or delete "
        f"{run_dir / 'supernet'} to train the supernet again from the start") in err, err
    state_file.unlink()
    code, out, err = run_cli(*common(files, run_dir, "--references", "none"))
    assert code == 0 and "supernet: already trained, 2 in all" in out, err
    assert json.loads(state_file.read_text())["status"] == "finished"


def test_a_second_search_on_the_same_folder_is_refused_untouched(finished, files, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    before = snapshot(run_dir)
    with hold(run_dir, "python -m mobileseg.search (the first)"):
        code, _, err = run_cli(*common(files, run_dir))
        assert snapshot(run_dir) == {**before, Path(".lock"): (run_dir / ".lock").read_bytes()}
    assert code == 2, err
    assert err == (f"mobileseg.search: error: {run_dir}: another command is running in this folder (pid "
                   f"{os.getpid()}: python -m mobileseg.search (the first)); wait for it to finish or stop it, or "
                   "use another folder\n")
    assert snapshot(run_dir) == before


def test_a_malformed_flag_value_is_bad_input_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mobileseg.search", "--space", "x.yaml", "--data", DATA,
                           "--run_dir", str(tmp_path / "run"), "--population", "many"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "mobileseg.search: error:" in done.stderr and "--population" in done.stderr
    assert not (tmp_path / "run").exists()


# ---- the adb backend, through the fake adb of tests/android ----------------------------------------

def test_a_missing_phone_exits_3_and_writes_nothing(fake_adb, files, tmp_path):  # noqa: F811
    fake_adb.add_phone("galaxy_s23")
    run_dir = tmp_path / "run"
    code, _, err = run_cli(*common(files, run_dir, "--latency_backend", "adb", "--serial", PIXEL))
    assert code == 3 and PIXEL in err and "Connect the phone and run the same command again" in err, err
    assert not run_dir.exists()


def test_a_phone_unplugged_mid_build_loses_nothing_and_the_search_resumes_on_it(fake_adb, files,  # noqa: F811
                                                                                 tmp_path):
    vanish_after = PREPARE_COMMANDS + 2 * BLOCK_COMMANDS  # the phone goes during the 3rd block
    fake_adb.add_phone("pixel7", outputs={"default": "v2024_percentiles_op_profile.txt"},
                       faults={"vanish_after_commands": vanish_after})
    run_dir = tmp_path / "run"
    args = common(files, run_dir, "--latency_backend", "adb", "--serial", PIXEL, "--threads", "4",
                  "--target_latency_ms", "20", "--references", "none")
    code, _, err = run_cli(*args)
    assert code == 3, err
    assert f"device {PIXEL} disappeared" in err and "2 entries are saved" in err and "6 blocks are left" in err
    kept = LatencyTable.load(run_dir / "latency_table.json")
    assert len(kept) == 2 and kept.fingerprint["model"] == "Pixel 7" and kept.fingerprint["threads"] == 4
    assert not (run_dir / "supernet").exists()

    fake_adb.device(PIXEL)["faults"] = {}  # plugged back in, and it stays
    fake_adb.write()
    fake_adb.phone_dir(PIXEL).joinpath(".fake_counters.json").unlink()
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "latency: 8 blocks" in out and "2 entries, 6 to measure" in out and "measured 6 blocks" in out
    table = LatencyTable.load(run_dir / "latency_table.json")
    assert len(table) == 8 and all(table[key] == entry for key, entry in kept.entries.items())
    assert {entry.median_ms for entry in table.entries.values()} == {4.401}  # the phone's benchmark_model
    assert all((run_dir / name).is_file() for name in OUTPUTS)
    report = json.loads((run_dir / "pareto.json").read_text())
    assert report["latency_source"].startswith("adb: Pixel 7, 4 thread(s), int8")
    # every network is 3 cells and the head (17.6 ms), or 2 and the head (a skip: 13.2 ms), all within 20 ms
    assert {round(entry["latency_ms"] / 4.401, 6) for entry in report["front"]} <= {3.0, 4.0}
    assert report["target_latency_ms"] == 20 and all(entry["feasible"] for entry in report["front"])
    assert report["chosen"]["reason"] == "the best proxy mIoU within the 20 ms target"


def test_a_supernet_trained_under_mixed_bfloat16_is_searched_in_float32(files, tmp_path):
    """Issue 20: ``--precision mixed_bfloat16`` trains the supernet so; the search scores as a float32 run would."""
    run_dir = tmp_path / "run"
    code, out, err = run_cli(*common(files, run_dir, "--precision", "mixed_bfloat16", "--supernet_epochs", "1",
                                     "--generations", "1", "--references", "none"))
    assert code == 0, err
    supernet_state = json.loads((run_dir / "supernet" / "state.json").read_text())
    assert supernet_state["fixed"]["precision"] == "mixed_bfloat16" and supernet_state["status"] == "finished"
    assert read_config(run_dir)["search"]["precision"] == "mixed_bfloat16"
    again = tmp_path / "again"
    shutil.copytree(run_dir, again)
    (again / "study.db").unlink()
    code, _, err = run_cli(*common(files, again, "--precision", "mixed_bfloat16", "--supernet_epochs", "1",
                                   "--generations", "1", "--references", "none", "--stage", "search"))
    assert code == 0, err
    scores = [{e["key"]: e["miou"] for e in json.loads((d / "pareto.json").read_text())["front"]}
              for d in (run_dir, again)]
    assert scores[0] == scores[1]  # the same float32 scoring after training as from the saved weights
