"""python -m mobileseg.evaluate: .keras and .tflite evaluate alike; hand-checked IoU; CLI and errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from PIL import Image

from mobileseg import evaluate as evaluate_cli
from mobileseg.data.problems import DataError
from mobileseg.data.sources import open_source
from mobileseg.data.synthetic import CLASS_NAMES, ROAD
from mobileseg.split_evaluation import evaluate
from mobileseg.inference import ModelError, Segmenter
from tests import tiny_segmenters
from tests.data.fake_layouts import make_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny network trained a few steps, as .keras, fp32 .tflite and int8 .tflite."""
    return tiny_segmenters.save_models(tiny_segmenters.trained_model(), tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="module")
def source():
    return open_source(tiny_segmenters.DATA)


@pytest.fixture(scope="module")
def results(models, source):
    return {key: evaluate(Segmenter.load(path), source, "test", progress=False) for key, path in models.items()}


def differing_pixels(a, b):
    """Pixels counted in different cells of two confusion matrices over the same ground truth."""
    return int(np.abs(np.array(a["confusion_matrix"]) - np.array(b["confusion_matrix"])).sum()) // 2


def test_keras_and_fp32_tflite_evaluations_agree(results, source):
    keras_result, fp32 = results["keras"], results["fp32"]
    assert keras_result["images"] == fp32["images"] == len(source.pairs("test"))
    assert keras_result["pixels"] == fp32["pixels"] > 0
    assert keras_result["miou"] > 0.2  # trained a little, so better than chance (1/8)
    # the same preprocessing and one confusion matrix: equal up to float rounding at the odd tie
    assert differing_pixels(keras_result, fp32) <= 1e-4 * keras_result["pixels"]
    assert abs(keras_result["miou"] - fp32["miou"]) < 1e-3


def test_int8_tflite_evaluation_is_close(models, results, source):
    keras_result, int8 = results["keras"], results["int8"]
    assert differing_pixels(keras_result, int8) < 0.05 * keras_result["pixels"]
    assert abs(keras_result["miou"] - int8["miou"]) < 0.03
    # and prediction by prediction, more than 95% of the pixels agree
    keras_model, int8_model = Segmenter.load(models["keras"]), Segmenter.load(models["int8"])
    same = total = 0
    for pair in source.pairs("test"):
        image = source.load_pair(pair)[0][None].astype(np.float32)
        same += int(np.sum(keras_model.predict(image) == int8_model.predict(image)))
        total += image.shape[1] * image.shape[2]
    assert same > 0.95 * total


def test_result_keys_and_full_resolution(results, source):
    result = results["int8"]
    assert {"miou", "pixel_accuracy", "per_class_iou", "pixels", "confusion_matrix", "model", "backend",
            "input_size", "data", "split", "images", "skipped", "class_names", "wall_seconds",
            "model_ms_per_image", "warnings", "threads"} <= set(result)
    assert list(result["per_class_iou"]) == list(CLASS_NAMES)
    assert result["input_size"] == [32, 48] and result["backend"] == "litert"
    valid = sum(int(np.sum(source.load_pair(p)[1] != 255)) for p in source.pairs("test"))
    assert result["pixels"] == valid  # every non-void pixel at the data's 48x64, not the model's 32x48
    assert json.loads(json.dumps(result)) == result


def test_per_class_iou_of_a_model_that_always_says_road(tmp_path, source):
    path = tmp_path / "road.keras"
    tiny_segmenters.constant_model(len(CLASS_NAMES), winner=ROAD).save(path)
    result = evaluate(Segmenter.load(path), source, "test", progress=False)
    masks = np.concatenate([source.load_pair(p)[1].ravel() for p in source.pairs("test")])
    valid = masks[masks != 255]
    road = np.mean(valid == ROAD)  # TP = road pixels, union = every valid pixel (all predicted road)
    present = set(np.unique(valid).tolist()) | {ROAD}
    expected = {name: (road if i == ROAD else 0.0 if i in present else None) for i, name in enumerate(CLASS_NAMES)}
    assert result["per_class_iou"] == pytest.approx(expected)
    assert result["miou"] == pytest.approx(road / len(present))
    assert result["pixel_accuracy"] == pytest.approx(road)
    matrix = np.array(result["confusion_matrix"])
    assert matrix[:, ROAD].tolist() == np.bincount(valid, minlength=len(CLASS_NAMES)).tolist()
    assert matrix.sum() == matrix[:, ROAD].sum()


def test_max_images_and_class_mismatch(tmp_path, models, source):
    result = evaluate(Segmenter.load(models["fp32"]), source, "test", max_images=2, progress=False)
    assert result["images"] == 2
    tiny_segmenters.constant_model(5, winner=0).save(tmp_path / "five.keras")
    with pytest.raises(ModelError, match=r"five.keras predicts 5 classes but synthetic:40,size=48x64 has 8 "
                                         r"\(sky, building, road"):
        evaluate(Segmenter.load(tmp_path / "five.keras"), source, "test")


def test_a_sidecar_naming_other_classes_gives_a_warning(tmp_path, source):
    tiny_segmenters.constant_model(8, winner=0).save(tmp_path / "m.keras")
    names = ["sky", "building", "road", "sidewalk", "vegetation", "car", "pole", "person"]
    (tmp_path / "m.json").write_text(json.dumps({"labels": [name.upper() for name in names]}))
    assert evaluate(Segmenter.load(tmp_path / "m.keras"), source, "test", max_images=1)["warnings"] == []
    (tmp_path / "m.json").write_text(json.dumps({"labels": names[::-1]}))
    (warning,) = evaluate(Segmenter.load(tmp_path / "m.keras"), source, "test", max_images=1)["warnings"]
    assert warning.startswith(f"{tmp_path / 'm.json'} names the classes person, pole") and "matched by id" in warning


def test_a_class_map_model_with_an_id_beyond_the_data_classes_is_refused(tmp_path, source):
    logits = tiny_segmenters.constant_model(12, winner=9)
    tiny_segmenters.class_map_model(logits).save(tmp_path / "ids.keras")
    with pytest.raises(ModelError, match=r"ids.keras predicted class id 9 but .* has 8 classes \(0..7\)"):
        evaluate(Segmenter.load(tmp_path / "ids.keras"), source, "test", progress=False)


def test_bad_pairs_stop_or_are_skipped(tmp_path):
    root = make_folder(tmp_path / "plants", split=True, count=3)  # 3 classes, 6x8 images
    (root / "images" / "val" / "plant1.jpg").write_bytes(b"broken")
    tiny_segmenters.constant_model(3, winner=1).save(tmp_path / "m.keras")
    segmenter, source = Segmenter.load(tmp_path / "m.keras"), open_source(f"folder:{root}")
    with pytest.raises(DataError, match="plant1.jpg: unreadable image"):
        evaluate(segmenter, source, "val", progress=False)
    result = evaluate(segmenter, source, "val", skip_bad=True, progress=False)
    assert result["images"] == 2 and len(result["skipped"]) == 1 and "plant1.jpg" in result["skipped"][0]


def run_in_process(capsys, *args):
    flag_values = flags.FlagValues()
    evaluate_cli.define_flags(flag_values)
    argv = flag_values(["evaluate", *args])
    code = evaluate_cli.run(flag_values, argv)
    return code, *capsys.readouterr()


def test_table_and_clear_cli_errors(tmp_path, capsys, models):
    data = ["--data", tiny_segmenters.DATA, "--noprogress"]
    code, out, err = run_in_process(capsys, "--model", str(models["fp32"]), *data, "--max_images", "1")
    assert code == 0 and err == ""
    assert "(litert, input 32x48) on synthetic:40,size=48x64 test: 1 images" in out and "mIoU" in out
    assert out.splitlines()[1].split() == ["class", "IoU", "%"] and out.splitlines()[2].startswith("sky")

    code, out, err = run_in_process(capsys, "--model", str(tmp_path / "none.keras"), *data)
    assert code == 2 and out == "" and f"no such model file: {tmp_path / 'none.keras'}" in err
    (tmp_path / "m.pt").write_bytes(b"torch")
    code, _, err = run_in_process(capsys, "--model", str(tmp_path / "m.pt"), *data)
    assert code == 2 and "unsupported model type '.pt'" in err
    tiny_segmenters.constant_model(3, winner=0).save(tmp_path / "three.keras")
    code, _, err = run_in_process(capsys, "--model", str(tmp_path / "three.keras"), *data)
    assert code == 2 and "predicts 3 classes but synthetic:40,size=48x64 has 8" in err
    code, _, err = run_in_process(capsys, "--model", str(models["fp32"]), "--data", "nope:x")
    assert code == 2 and "unknown kind 'nope'" in err
    code, _, err = run_in_process(capsys, "--model", str(models["fp32"]), *data, "--split", "train2")
    assert code == 2 and "no split 'train2'" in err
    code, _, err = run_in_process(capsys, "--data", tiny_segmenters.DATA)
    assert code == 2 and "--model required" in err


def test_cli_json_and_out_file(tmp_path, models, results):
    out = tmp_path / "sub" / "eval.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO)
    completed = subprocess.run(
        [sys.executable, "-m", "mobileseg.evaluate", "--model", str(models["int8"]), "--data", tiny_segmenters.DATA,
         "--split", "test", "--json", "--out", str(out), "--threads", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(out.read_text()) == result
    assert {"miou", "per_class_iou", "pixel_accuracy", "confusion_matrix"} <= set(result)
    assert result["confusion_matrix"] == results["int8"]["confusion_matrix"]
    assert result["threads"] == 1


def test_the_cli_evaluates_the_quantization_aware_model_export_saves(tmp_path, models, source):
    """``model_qat.keras`` loads in a fresh process (its quantization layers registered) and scores what it did here."""
    from mobileseg.quant.qat import quantize_model
    from mobileseg.quant.qat_calibration import calibrate

    qat = quantize_model(Segmenter.load(models["keras"]).model)
    calibrate(qat, [image for (image,) in tiny_segmenters.representative_images(2)()])
    path = tmp_path / "model_qat.keras"
    qat.save(path)
    expected = evaluate(Segmenter.load(path), source, "test", progress=False)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO)
    completed = subprocess.run(
        [sys.executable, "-m", "mobileseg.evaluate", "--model", str(path), "--data", tiny_segmenters.DATA,
         "--split", "test", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["confusion_matrix"] == expected["confusion_matrix"]


def test_images_of_different_sizes_are_each_evaluated_at_their_own_size(tmp_path):
    root = make_folder(tmp_path / "plants", split=True, count=2)
    big = np.zeros((30, 20, 3), np.uint8)
    Image.fromarray(big).save(root / "images" / "val" / "plant0.jpg")
    Image.fromarray(np.ones((30, 20), np.uint8), mode="L").save(root / "masks" / "val" / "plant0.png")
    tiny_segmenters.constant_model(3, winner=1).save(tmp_path / "m.keras")
    result = evaluate(Segmenter.load(tmp_path / "m.keras"), open_source(f"folder:{root}"), "val", progress=False)
    assert result["pixels"] == 30 * 20 + 36  # the big image at 30x20, the other 6x8 minus its 12 void pixels


def test_tome_merges_tokens_in_a_keras_network_and_refuses_what_it_cannot_rewrite(tmp_path, capsys, models):
    from tests.arch.test_tome import tiny_segformer

    tiny_segformer(num_classes=8, input_size=(48, 64)).save(tmp_path / "segformer.keras")
    data = ["--data", tiny_segmenters.DATA, "--noprogress", "--max_images", "2", "--json"]
    results = {}
    for tome in (None, "0", "0.5", "0.75 grid"):
        ratio, _, method = (tome or "").partition(" ")
        code, out, err = run_in_process(capsys, "--model", str(tmp_path / "segformer.keras"), *data,
                                        *(["--tome", ratio] if tome else []), *(["--tome_method", method] if method else []))
        assert code == 0, err
        results[tome] = json.loads(out)
    assert "token_merging" not in results[None]
    assert results["0"]["confusion_matrix"] == results[None]["confusion_matrix"]  # ratio 0: the network as is
    merged = results["0.5"]["token_merging"]
    assert merged["ratio"] == 0.5 and sorted(s["tome_mode"] for s in merged["blocks"].values()) == ["kv_bsm", "q_bsm"]
    grid = results["0.75 grid"]["token_merging"]
    assert (grid["method"], sorted(s["tome_mode"] for s in grid["blocks"].values())) == ("grid", ["kv_pool", "q_grid"])

    for model, tome, message in [
            (tmp_path / "segformer.keras", ["1"], "--tome: token merging ratio must be a number in [0, 1)"),
            (tmp_path / "segformer.keras", ["0.5", "--tome_method", "grid"], "the ratio must be 1 - 1/s**2"),
            (models["fp32"], ["0.5"], "--tome rewrites a .keras network; a .tflite file is fixed"),
            (models["keras"], ["0.5"], "has no efficient-attention block")]:
        code, out, err = run_in_process(capsys, "--model", str(model), *data, "--tome", *tome)
        assert code == 2 and out == "" and message in err, err
