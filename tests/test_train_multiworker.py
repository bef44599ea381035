"""``python -m mobileseg.train --distribute multiworker``: two worker processes on this machine train what one
process with two replicas trains; only the chief writes the run folder; the run resumes; bad TF_CONFIG.

The reference is one process whose MirroredStrategy spans two logical CPU devices with the same global
batch (2 images per replica): the two workers must compute exactly that (per-replica BatchNorm statistics
and OHEM included). A single-replica run (``--distribute none``) is not the reference: its BatchNorm
normalizes over the whole global batch, so it trains another model.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import mobileseg.training.trainer  # noqa: F401  (registers the layers and the schedule, to load last.keras)
from mobileseg.training import run_files
from tests.test_train import ARCH, REPO, run_cli

DATA = "synthetic:16,size=32x48"  # 12 train pairs: 3 steps of 4 images per epoch
TIMEOUT = 900  # seconds a process may take on a loaded machine (about 40 s each when the machine is idle)
RTOL, ATOL = 1e-5, 1e-6
"""How close the workers' weights and losses must be to the reference's. With two replicas every
all-reduced value is a sum of two float32 numbers, and a two-term sum does not depend on its order:
measured, the weights after 2 epochs are bit-identical. The tolerance leaves room for the last bit a
collective implementation may round differently (scaling before summing), grown by a few Adam steps; it
is far below what a real difference makes (a single-replica run's weights differ by up to 5e-3)."""
TWO_CPUS = ("import sys, tensorflow as tf; "
            "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], "
            "[tf.config.LogicalDeviceConfiguration()] * 2); "
            "from mobileseg.train import main; main()")


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(command: list[str], run_dir: Path, tmp: Path, *flags: str, tf_config: dict | None = None):
    args = ["--arch", str(tmp / "tiny.yaml"), "--data", DATA, "--input_size", "32x48", "--batch_size", "4",
            "--verbose", "0", "--run_dir", str(run_dir), *flags]
    env = {**os.environ, "TMPDIR": str(tmp / "worker_tmp"), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, *command, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    return process.returncode, out, err


def two_workers(run_dir: Path, tmp: Path, *flags: str) -> list[tuple[int, str, str]]:
    """Both workers of a two-machine cluster on this machine, sharing ``run_dir``; their exit codes and output."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = [start(["-m", "mobileseg.train"], run_dir, tmp, "--distribute", "multiworker", *flags,
                       tf_config={"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
                 for index in range(2)]
    return [finish(process) for process in processes]


def weights(path: Path) -> dict[str, np.ndarray]:
    model = keras.saving.load_model(path)
    return {v.path: np.asarray(v) for v in [*model.weights, *model.optimizer.variables]}


@pytest.mark.slow
def test_two_workers_train_what_one_process_with_two_replicas_trains_and_only_the_chief_writes(tmp_path):
    (tmp_path / "tiny.yaml").write_text(ARCH)
    (tmp_path / "worker_tmp").mkdir()
    run_dir, reference_dir = tmp_path / "run", tmp_path / "reference"
    reference = start(["-c", TWO_CPUS], reference_dir, tmp_path, "--distribute", "mirrored", "--epochs", "2")

    first = two_workers(run_dir, tmp_path, "--epochs", "1")
    for code, out, err in first:
        assert code == 0, err[-2000:]
    assert "model: " in first[0][1] and "worker 1 of 2: the chief (localhost:" in first[1][1]
    state = run_files.RunState.load(run_dir)
    assert (state.epoch, state.optimizer_step, state.status) == (1, 3, "finished")
    assert len(run_files.read_log(run_dir)) == 1  # a second writer would have appended its own line
    assert {p.name for p in run_dir.iterdir()} == {"config.yaml", "last.keras", "model.keras", "train_log.jsonl",
                                                    "train_state.json", "tensorboard"}
    assert not list((tmp_path / "worker_tmp").glob("mobileseg-worker*"))  # worker 1's own folder is gone

    resumed = two_workers(run_dir, tmp_path, "--epochs", "2")  # both resume from the chief's last.keras
    for code, out, err in resumed:
        assert code == 0, err[-2000:]
        assert "trained 2 epochs (6 steps)" in out
    code, out, err = finish(reference)
    assert code == 0, err[-2000:]
    assert "trained 2 epochs (6 steps)" in out

    log, expected_log = run_files.read_log(run_dir), run_files.read_log(reference_dir)
    assert [e["epoch"] for e in log] == [1, 2]
    for key in ("loss", "main_loss", "aux_loss", "val_miou", "val_pixel_accuracy"):
        np.testing.assert_allclose([e[key] for e in log], [e[key] for e in expected_log], rtol=RTOL, atol=ATOL,
                                   err_msg=key)
    ours, expected = weights(run_dir / "last.keras"), weights(reference_dir / "last.keras")
    assert sorted(ours) == sorted(expected)
    for name, value in expected.items():  # weights, BatchNorm statistics, the optimizer's moments and step
        np.testing.assert_allclose(ours[name], value, rtol=RTOL, atol=ATOL, err_msg=name)
    assert not list((tmp_path / "worker_tmp").glob("mobileseg-worker*"))


@pytest.mark.parametrize("tf_config, message", [
    (None, "--distribute multiworker: TF_CONFIG is not set: set it on every machine"),
    ("{'cluster': 1}", "--distribute multiworker: TF_CONFIG: not JSON (Expecting property name"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}',
     "--distribute multiworker: TF_CONFIG: task index 1 is not in the worker job (1 task)"),
])
def test_a_missing_or_malformed_tf_config_exits_2_naming_it_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                                               tf_config, message):
    (tmp_path / "tiny.yaml").write_text(ARCH)
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    code = run_cli("--arch", str(tmp_path / "tiny.yaml"), "--data", DATA, "--input_size", "32x48",
                   "--run_dir", str(tmp_path / "run"), "--distribute", "multiworker")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"mobileseg.train: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()
