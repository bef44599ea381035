"""mobileseg.arm.runner on this CPU: raw outputs, the delegate report, the CLI's files and errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mobileseg.arm import runner
from mobileseg.arm.parity import scene_images
from tests.arm.models import INPUT_SIZE, NUM_CLASSES, write_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("arm_runner"))


def test_int8_file_gives_raw_int8_logits_in_one_xnnpack_partition(models):
    images = scene_images(2, INPUT_SIZE)
    outputs, report = runner.run_model(models["int8"], images)
    assert outputs.dtype == np.int8 and outputs.shape[0] == 2 and outputs.shape[-1] == NUM_CLASSES
    assert report["output_kind"] == "logits" and report["output_scale"] > 0
    assert report["xnnpack_partitions"] == 1 and report["fallback_ops"] == []
    assert report["cpu"] == {"machine": "x86_64"}
    again, _ = runner.run_model(models["int8"], images[1:])
    np.testing.assert_array_equal(again, outputs[1:])  # one image at a time: the batch does not matter


def test_every_output_of_one_image_holds_the_raw_first_output(models):
    images = scene_images(1, INPUT_SIZE)
    outputs, _ = runner.run_model(models["int8"], images)
    tensors = runner.run_every_output(models["int8"], images[0])
    (first,) = [value for value in tensors.values() if value.shape == outputs.shape and value.dtype == outputs.dtype]
    np.testing.assert_array_equal(first, outputs)


def test_fp32_file_gives_float_logits(models):
    outputs, report = runner.run_model(models["fp32"], scene_images(1, INPUT_SIZE))
    assert outputs.dtype == np.float32 and report["output_scale"] == 0.0 and report["xnnpack_partitions"] >= 1


def test_images_of_another_size_are_refused_naming_the_file(models):
    with pytest.raises(ValueError, match=r"tiny_0_int8\.tflite: images of shape \(1, 16, 16, 3\); the model "
                                         r"takes \[N, 32, 48, 3\]"):
        runner.run_model(models["int8"], scene_images(1, (16, 16)))


def test_command_writes_outputs_and_report_or_one_error_line(models, tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, scene_images(1, INPUT_SIZE))
    command = [sys.executable, "-m", "mobileseg.arm", str(models["int8"]), str(images), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / runner.OUTPUTS).dtype == np.int8
    assert json.loads((tmp_path / runner.REPORT).read_text())["xnnpack_partitions"] == 1
    command[3] = str(tmp_path / "missing.tflite")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"mobileseg.arm: error: no such model file: {command[3]}"]
