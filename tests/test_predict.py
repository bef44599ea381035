"""python -m mobileseg.predict: colourised masks and overlays for .keras and .tflite; unreadable images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from mobileseg import predict as predict_cli
from mobileseg.deploy import tflite_convert
from mobileseg.inference import Segmenter, default_palette
from mobileseg.predict import list_images, predict_images
from tests import tiny_segmenters

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLORS = [[10, 20, 30], [200, 100, 0], [0, 0, 250]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A model that always predicts class 1 of 3, as .keras and int8 .tflite, with a colour sidecar."""
    folder = tmp_path_factory.mktemp("predict")
    model = tiny_segmenters.constant_model(3, winner=1)
    paths = {"keras": folder / "car.keras", "int8": folder / "car_int8.tflite"}
    model.save(paths["keras"])
    calibration = tflite_convert.random_representative([(1, 16, 16, 3)], low=0.0, high=255.0)
    paths["int8"].write_bytes(tflite_convert.convert(model, "int8", representative=calibration))
    for path in paths.values():
        path.with_suffix(".json").write_text(json.dumps({"labels": ["road", "car", "sky"], "colors": COLORS}))
    return paths


def write_photo(path, size=(20, 30), mode="RGB", seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("kind", ["keras", "int8"])
def test_mask_and_overlay_in_the_sidecar_colours(tmp_path, models, kind):
    photo = write_photo(tmp_path / "street.jpg")
    report = predict_images(Segmenter.load(models[kind]), [tmp_path / "street.jpg"], tmp_path / "out",
                            alpha=0.25, progress=False)
    assert report == {"written": [str(tmp_path / "out" / "street_mask.png"),
                                  str(tmp_path / "out" / "street_overlay.png")], "failed": []}
    mask = np.asarray(Image.open(tmp_path / "out" / "street_mask.png"))
    assert mask.shape == (20, 30, 3)  # the photo's size, not the model's 16x16
    assert (mask == COLORS[1]).all()
    overlay = np.asarray(Image.open(tmp_path / "out" / "street_overlay.png")).astype(float)
    expected = np.round(0.75 * photo + 0.25 * np.array(COLORS[1]))
    np.testing.assert_array_equal(overlay, expected)


def test_without_sidecar_the_default_palette(tmp_path):
    tiny_segmenters.constant_model(4, winner=2).save(tmp_path / "plain.keras")
    write_photo(tmp_path / "a.png", size=(8, 8))
    predict_images(Segmenter.load(tmp_path / "plain.keras"), [tmp_path / "a.png"], tmp_path, progress=False)
    assert (np.asarray(Image.open(tmp_path / "a_mask.png")) == default_palette(4)[2]).all()


def test_grey_and_rgba_images_and_shared_stems(tmp_path, models):
    folder = tmp_path / "in"
    folder.mkdir()
    write_photo(folder / "a.png", mode="L")
    write_photo(folder / "a.jpg")
    write_photo(folder / "b.PNG", mode="RGBA")
    (folder / "readme.txt").write_text("not an image")
    images = list_images(folder)
    assert [p.name for p in images] == ["a.jpg", "a.png", "b.PNG"]
    report = predict_images(Segmenter.load(models["keras"]), images, tmp_path / "out", progress=False)
    assert sorted(os.path.basename(p) for p in report["written"]) == [
        "a_jpg_mask.png", "a_jpg_overlay.png", "a_png_mask.png", "a_png_overlay.png",
        "b_mask.png", "b_overlay.png"]


def run_in_process(capsys, *args):
    flag_values = flags.FlagValues()
    predict_cli.define_flags(flag_values)
    code = predict_cli.run(flag_values, flag_values(["predict", *args]))
    return code, *capsys.readouterr()


def test_clear_cli_errors(tmp_path, capsys, models):
    write_photo(tmp_path / "a.png")
    out = ["--out", str(tmp_path / "out"), "--noprogress"]
    code, stdout, err = run_in_process(capsys, "--model", str(models["keras"]), "--input", str(tmp_path / "a.png"),
                                       *out)
    assert code == 0 and "1 of 1 image(s) segmented" in stdout and err == ""
    code, _, err = run_in_process(capsys, "--model", str(models["keras"]), "--input", str(tmp_path / "nope"), *out)
    assert code == 2 and f"no such image or folder: {tmp_path / 'nope'}" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_in_process(capsys, "--model", str(models["keras"]), "--input", str(tmp_path / "empty"), *out)
    assert code == 2 and "empty: no images (.png, .jpg, .jpeg, .bmp) in this folder" in err
    code, _, err = run_in_process(capsys, "--model", str(tmp_path / "x.keras"), "--input", str(tmp_path), *out)
    assert code == 2 and "no such model file" in err
    (tmp_path / "x.h5").write_bytes(b"hdf5")
    code, _, err = run_in_process(capsys, "--model", str(tmp_path / "x.h5"), "--input", str(tmp_path), *out)
    assert code == 2 and "unsupported model type '.h5'" in err
    code, _, err = run_in_process(capsys, "--model", str(models["keras"]))
    assert code == 2 and "--input, --out required" in err


def test_cli_keeps_going_past_an_unreadable_image_and_exits_1(tmp_path, models):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_photo(folder / "zebra.jpg", size=(12, 10))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO)
    completed = subprocess.run(
        [sys.executable, "-m", "mobileseg.predict", "--model", str(models["int8"]), "--input", str(folder),
         "--out", str(tmp_path / "out"), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1, completed.stderr
    assert f"{folder / 'broken.png'}: unreadable image" in completed.stderr
    assert "1 of 3 image(s) could not be read" in completed.stderr
    report = json.loads(completed.stdout)
    assert [f["image"] for f in report["failed"]] == [str(folder / "broken.png")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "good_mask.png", "good_overlay.png", "zebra_mask.png", "zebra_overlay.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "zebra_mask.png")).shape == (12, 10, 3)
