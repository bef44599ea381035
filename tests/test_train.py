"""``python -m mobileseg.train``: a run folder, resuming (also after SIGKILL), the NaN guard, bad input."""

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import pytest
from absl import flags

from mobileseg import train
from mobileseg.arch import builder, schema_io
from mobileseg.run.fingerprint import arch_sha256
from mobileseg.run.run_config import read_config
from mobileseg.run.run_dir import RunDir
from mobileseg.training import callbacks, run_files

ARCH = """
name: tiny_aux
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 12, stride: 2}, {op: mbconv, width: 16, stride: 2}]
head: {op: light, inputs: [{branch: main}], width: 16, aux: [{branch: main, cell: 1}]}
"""
REPO = Path(__file__).resolve().parents[1]
DATA = "synthetic:16,size=32x48"  # 12 train pairs: 6 steps of 2 per epoch, 3 val pairs


def run_cli(*args: str) -> int:
    """Run the command in this process, on flags of its own; returns the exit code."""
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    argv = flag_values(["mobileseg.train", *args])
    return train.run(flag_values, argv)


def common(arch: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--arch", str(arch), "--data", DATA, "--input_size", "32x48", "--batch_size", "2", "--verbose", "0",
            "--warmup_epochs", "0.5", "--run_dir", str(run_dir), *extra]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_cli")
    arch = folder / "tiny.yaml"
    arch.write_text(ARCH)
    genotype = schema_io.load(arch)
    for name, classes in (("teacher.keras", 8), ("teacher5.keras", 5)):
        builder.build_model(genotype, classes, (64, 64)).save(folder / name)  # another size: resized for crops
    return folder


@pytest.fixture(scope="module")
def one_epoch(files):
    """A run folder after one epoch, trained under MirroredStrategy with a teacher and ENet's class weights."""
    run_dir = files / "one_epoch"
    code = run_cli(*common(files / "tiny.yaml", run_dir, "--epochs", "1", "--distribute", "mirrored",
                           "--teacher", str(files / "teacher.keras"), "--model_size", "48x64",
                           "--class_weight", "enet"))
    assert code == 0
    return run_dir


@pytest.mark.slow
def test_one_epoch_writes_the_run_folder(one_epoch):
    config = read_config(one_epoch)["train"]
    assert set(train.FLAG_NAMES) <= set(config)
    assert config["input_size"] == [32, 48] and config["ohem_min_kept"] == 32 * 48 // 4
    assert (config["distribute"], config["replicas"], config["auxiliary_heads"]) == ("mirrored", 1, 1)
    assert config["arch_name"] == "tiny_aux" and config["num_classes"] == 8 and config["output_stride"] == 8
    assert config["class_weight"] == "enet" and len(config["class_weights"]) == 8
    assert all(1.0 < w <= 51.0 for w in config["class_weights"])  # ENet's range: 1/ln(1.02 + p) for p in [0, 1]
    state = json.loads((one_epoch / "train_state.json").read_text())
    assert (state["epoch"], state["optimizer_step"], state["status"]) == (1, 6, "finished")
    (entry,) = run_files.read_log(one_epoch)
    assert entry["distill_loss"] > 0 and entry["aux_loss"] > 0 and 0 <= entry["val_miou"] <= 1
    assert len(entry["val_per_class_iou"]) == 8 and entry["images_per_second"] > 0
    best = keras.saving.load_model(one_epoch / "model.keras")
    assert tuple(best.input.shape) == (None, 48, 64, 3) and tuple(best.output.shape) == (None, 6, 8, 8)
    last = keras.saving.load_model(one_epoch / "last.keras")
    assert len(last.outputs) == 2 and int(last.optimizer.iterations) == 6
    assert {p.name for p in (one_epoch / "tensorboard").iterdir()} == {"train", "validation"}


@pytest.mark.slow
def test_restarted_with_more_epochs_it_resumes(one_epoch, files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    assert run_cli(*common(files / "tiny.yaml", run_dir, "--epochs", "2")) == 0
    assert "trained 2 epochs (12 steps)" in capsys.readouterr().out
    state = run_files.RunState.load(run_dir)
    assert (state.epoch, state.optimizer_step, state.status) == (2, 12, "finished")
    assert [e["epoch"] for e in run_files.read_log(run_dir)] == [1, 2]
    assert int(keras.saving.load_model(run_dir / "last.keras").optimizer.iterations) == 12


@pytest.mark.slow
def test_an_absurd_learning_rate_stops_with_the_step_and_keeps_the_last_good_model(one_epoch, files, tmp_path,
                                                                                    capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    checkpoints = {name: (run_dir / name).read_bytes() for name in ("model.keras", "last.keras")}
    code = run_cli(*common(files / "tiny.yaml", run_dir, "--epochs", "2", "--lr", "1e6", "--warmup_epochs", "0"))
    error = capsys.readouterr().err
    assert code == 1
    where = r"at epoch 2, step ([1-6]) \(optimizer step (\d+)\)"
    found = re.search(rf"training diverged: (loss became (nan|inf)|weights became non-finite) {where}", error)
    assert found and int(found[4]) == 6 + int(found[3]), error
    assert "last good checkpoints" in error and "lr 1e+06" in error
    for name, data in checkpoints.items():
        assert (run_dir / name).read_bytes() == data, f"{name} changed"
    state = run_files.RunState.load(run_dir)
    assert (state.status, state.epoch, state.optimizer_step) == ("diverged", 1, 6)
    assert [e["epoch"] for e in run_files.read_log(run_dir)] == [1]
    keras.saving.load_model(run_dir / "model.keras")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_where_it_stopped(files, tmp_path):
    run_dir = tmp_path / "run"
    args = ["--arch", str(files / "tiny.yaml"), "--data", "synthetic:80,size=32x48", "--input_size", "32x48",
            "--batch_size", "2", "--epochs", "2", "--run_dir", str(run_dir), "--notensorboard"]  # 28 steps/epoch
    process = subprocess.Popen([sys.executable, "-m", "mobileseg.train", *args, "--verbose", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
    output = []
    reader = threading.Thread(target=lambda: output.extend(iter(lambda: process.stdout.read(1), b"")), daemon=True)
    reader.start()
    deadline, text = time.monotonic() + 300, ""
    try:
        while time.monotonic() < deadline and process.poll() is None:
            text = b"".join(output).decode(errors="replace")
            if any(2 <= int(step) < 28 for step in re.findall(r"(\d+)/28", text.partition("Epoch 2/2")[2])):
                break  # epoch 2 is under way
            time.sleep(0.005)
        else:
            pytest.fail(f"never saw epoch 2 under way; exit {process.poll()}; output: {text[-300:]}")
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    state = run_files.RunState.load(run_dir)
    assert (state.epoch, state.optimizer_step, state.status) == (1, 28, "running")  # killed in epoch 2

    assert run_cli(*args, "--verbose", "0") == 0  # the same command, again
    state = run_files.RunState.load(run_dir)
    assert (state.epoch, state.optimizer_step, state.status) == (2, 56, "finished")
    assert [e["epoch"] for e in run_files.read_log(run_dir)] == [1, 2]
    assert int(keras.saving.load_model(run_dir / "last.keras").optimizer.iterations) == 56
    assert keras.saving.load_model(run_dir / "model.keras").output.shape[-1] == 8
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("change, message", [
    ({"--arch": "{files}/missing.yaml"}, r"missing\.yaml: cannot read"),
    ({"--data": "camvid:{files}/no_such_dir"}, r"--data camvid:.*no_such_dir: .*not found"),
    ({"--data": "foo:bar"}, r"--data foo:bar: unknown kind 'foo'"),
    ({"--input_size": "36x48"}, r"--input_size 36x48: height and width must be multiples of 8.*e\.g\. 32x48"),
    ({"--teacher": "{files}/teacher5.keras"}, r"--teacher .*teacher5\.keras: the teacher predicts 5 classes but "
                                              r"the data set has 8"),
    ({"--teacher": "{files}/none.keras"}, r"--teacher: .*none\.keras: no teacher model there"),
    ({"--batch_size": "3"}, r"holds a run with batch_size=2, but this run asks for batch_size=3"),
    ({"--arch": "{repo}/search_space/references/mobilenetv3_small_lraspp.yaml"}, r"--arch .*another network"),
    ({"--lr": "-1"}, r"--lr must be positive"),
    ({"--init": "{files}/teacher.keras"}, r"--init .*teacher\.keras: .* holds a run started from random weights"),
])
def test_bad_input_exits_2_names_the_culprit_and_leaves_the_run_dir_alone(files, tmp_path, capsys, change,
                                                                           message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.keras").write_bytes(b"the last checkpoint")
    (run_dir / "model.keras").write_bytes(b"the best model")
    run_files.RunState(epoch=1, optimizer_step=6, fixed={"batch_size": 2}).save(run_dir)
    arch_digest = arch_sha256(schema_io.load(files / "tiny.yaml"))
    (run_dir / "config.yaml").write_text(f"search: {{budget_ms: 9}}\ntrain: {{arch_sha256: {arch_digest}}}\n")
    before = snapshot(run_dir)
    args = common(files / "tiny.yaml", run_dir, "--epochs", "2")
    for flag, value in change.items():
        value = value.format(files=files, repo=REPO)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code = run_cli(*args)
    error = capsys.readouterr().err
    assert code == 2, error
    assert re.search(message, error), error
    assert snapshot(run_dir) == before


def test_bad_input_does_not_create_the_run_dir(files, tmp_path, capsys):
    run_dir = tmp_path / "new"
    assert run_cli(*common(files / "tiny.yaml", run_dir, "--input_size", "30x48")) == 2
    assert "--input_size 30x48" in capsys.readouterr().err
    assert not run_dir.exists()
    assert run_cli("--arch", str(files / "tiny.yaml")) == 2
    assert "--data, --run_dir required" in capsys.readouterr().err


def test_init_is_reported_recorded_and_never_redone_on_resume(files, tmp_path, capsys):
    run_dir, source = tmp_path / "run", files / "teacher.keras"
    args = common(files / "tiny.yaml", run_dir, "--notensorboard", "--init", str(source))
    assert run_cli(*args, "--epochs", "1") == 0
    printed = capsys.readouterr().out
    assert re.search(r"init from .*teacher\.keras: \d+ of \d+ weights matched", printed), printed
    assert "missing (1 layers): aux_head_0" in printed  # the teacher file was saved without its auxiliary head
    report = json.loads((run_dir / "init_report.json").read_text())
    assert report["layers"]["missing"] == ["aux_head_0"] and report["layers"]["partly_matched"] == []
    assert report["shape_mismatch"] == {} and report["source"] == str(source)
    assert read_config(run_dir)["train"]["init"] == str(source)
    assert run_cli(*args, "--epochs", "2") == 0  # resumes from its own last.keras
    assert "init from" not in capsys.readouterr().out
    assert json.loads((run_dir / "init_report.json").read_text()) == report
    assert run_files.RunState.load(run_dir).epoch == 2
    before = snapshot(run_dir)
    for other in (str(files / "teacher5.keras"), None):
        changed = [a for a in args if a not in ("--init", str(source))] + (["--init", other] if other else [])
        assert run_cli(*changed, "--epochs", "3") == 2
        assert re.search(r"--init .*: .* holds a run started from .*teacher\.keras; resume it with the same --init",
                         capsys.readouterr().err)
    assert snapshot(run_dir) == before


def test_a_bad_init_exits_2_before_the_run_dir_is_made(files, tmp_path, capsys):
    run_dir = tmp_path / "new"
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    for value, message in ((str(tmp_path / "none.keras"), "none.keras: no such file"),
                           (str(tmp_path / "bad.keras"), "bad.keras: not a .keras model file"),
                           (f"supernet:{tmp_path}", "holds no trained supernet")):
        assert run_cli(*common(files / "tiny.yaml", run_dir, "--init", value)) == 2
        assert message in capsys.readouterr().err
        assert not run_dir.exists()


class Killed(BaseException):
    """Stands for a SIGKILL at one point of the checkpoint writes."""


@pytest.mark.parametrize("killed_at", [RunDir.LAST, RunDir.MODEL])
def test_a_run_killed_while_writing_a_checkpoint_of_its_first_epoch_resumes(files, tmp_path, monkeypatch, killed_at):
    run_dir = tmp_path / "run"
    args = common(files / "tiny.yaml", run_dir, "--epochs", "2", "--notensorboard")
    save = run_files.save_model_atomic

    def killed_while_saving(model, path):
        if path.name == killed_at:
            raise Killed
        return save(model, path)

    monkeypatch.setattr(callbacks, "save_model_atomic", killed_while_saving)
    with pytest.raises(Killed):
        run_cli(*args)
    monkeypatch.setattr(callbacks, "save_model_atomic", save)
    assert run_cli(*args) == 0  # the same command again
    state = run_files.RunState.load(run_dir)
    assert (state.epoch, state.status) == (2, "finished")
    assert [e["epoch"] for e in run_files.read_log(run_dir)][-1] == 2


def test_a_damaged_state_file_or_a_busy_folder_exits_2_and_changes_nothing(files, tmp_path, capsys):
    from mobileseg.run_lock import hold

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.keras").write_bytes(b"the last checkpoint")
    (run_dir / RunDir.TRAIN_STATE).write_text('{"epoch": 1, "optimi')  # cut short
    before = snapshot(run_dir)
    args = common(files / "tiny.yaml", run_dir, "--epochs", "2")
    assert run_cli(*args) == 2
    assert re.search(r"train_state\.json: damaged.*move it away", capsys.readouterr().err)
    assert snapshot(run_dir) == before
    (run_dir / RunDir.TRAIN_STATE).unlink()
    with hold(run_dir, "mobileseg.search"):
        assert run_cli(*args) == 2
    assert "another command is running in this folder" in capsys.readouterr().err
    assert snapshot(run_dir) == {Path("last.keras"): b"the last checkpoint"}
