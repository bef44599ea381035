"""mobileseg.arm.parity and ``mobileseg.bench --arm_emulated``: the same file on emulated aarch64
LiteRT and on this CPU (skipped, naming the reason, without the arm64 root: ``make arm_root``)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mobileseg.arm import parity, runner
from tests.arm.models import INPUT_SIZE, arm_root, write_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arm_parity")
    return write_models(folder, seed=0), write_models(folder, seed=1)


def test_compare_counts_int8_steps_and_class_flips():
    x86 = np.zeros((1, 2, 2, 3), np.int8)
    x86[..., 0] = 5
    same = parity.compare_outputs(x86, x86.copy(), "logits")
    assert same == {"class_map_agreement": 1.0, "max_logit_diff_steps": 0.0, "agrees": True}
    arm = x86.copy()
    arm[0, 0, 0, 2] = 9  # one pixel's class flips, by nine steps
    assert parity.compare_outputs(x86, arm, "logits") == {
        "class_map_agreement": 0.75, "max_logit_diff_steps": 9.0, "agrees": False}


def test_compare_float_logits_in_steps_of_their_range_and_class_maps():
    x86 = np.linspace(0.0, 25.5, 12, dtype=np.float32).reshape(1, 2, 2, 3)
    arm = x86 + np.float32(0.05)  # half a step of a range of 25.5
    assert parity.compare_outputs(x86, arm, "logits")["max_logit_diff_steps"] == pytest.approx(0.5, abs=1e-3)
    ids = np.array([[[1, 2], [3, 4]]], np.uint8)
    flipped = ids.copy()
    flipped[0, 1, 1] = 0
    assert parity.compare_outputs(ids, flipped, "classes") == {
        "class_map_agreement": 0.75, "max_logit_diff_steps": None, "agrees": False}
    with pytest.raises(ValueError, match="outputs differ in shape or type"):
        parity.compare_outputs(ids, ids[:, :1], "classes")


@pytest.mark.parametrize("mode", ["int8", "fp32"])
def test_emulated_aarch64_run_matches_this_cpu(models, mode):
    root = arm_root()
    row = parity.check_file(root, models[0][mode], parity.scene_images(1, INPUT_SIZE))
    assert row["arm_cpu"] == {"machine": "aarch64", "asimddp": True, "sve": True, "i8mm": True, "sme": False}
    assert row["agrees"], row
    assert row["arm_partitions"] == row["x86_partitions"] and row["arm_fallback_ops"] == row["x86_fallback_ops"]


def test_emulated_outputs_of_another_network_disagree(models):
    root = arm_root()
    images = parity.scene_images(1, INPUT_SIZE)
    x86, report = runner.run_model(models[0]["int8"], images)
    arm, _ = parity.run_emulated(root, models[1]["int8"], images)
    assert not parity.compare_outputs(x86, arm, report["output_kind"])["agrees"]


def run_bench(*args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "mobileseg.bench", "--arm_emulated", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_bench_arm_emulated_without_a_root_is_one_line_and_exit_2(models, tmp_path):
    done = run_bench("--model", str(models[0]["int8"]), "--arm_root", str(tmp_path / "none"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mobileseg.bench: error: no arm64 root at {tmp_path / 'none'}: make it with `make arm_root` "
        "(.ci/arm_root.sh)"]


def test_bench_arm_emulated_writes_the_comparison(models, tmp_path):
    arm_root()
    out = tmp_path / "arm.json"
    done = run_bench("--model", str(models[0]["int8"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("aarch64 LiteRT under qemu-aarch64 version") and "-cpu max,sme=off" in lines[0]
    assert lines[2].startswith(str(models[0]["int8"])) and lines[2].endswith("yes")
    (row,) = json.loads(out.read_text())["rows"]
    assert row["x86_partitions"] == row["arm_partitions"] == 1
