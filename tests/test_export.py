import errno
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from absl import flags
from ai_edge_litert.interpreter import Interpreter

from mobileseg import atomic_write
from mobileseg import export as export_cli
from mobileseg.arch import builder, schema_io
from mobileseg.deploy import export_run, packaging
from mobileseg.deploy.export_settings import ExportSettings
from mobileseg.deploy.onnx_export import run_onnx
from mobileseg.run_lock import hold
from tests.quant.networks import images, randomize_statistics

TINY = """
name: tiny
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2},
                                       {op: mbconv, width: 16, stride: 2, se: true}]}
head: {op: light, inputs: [{branch: main}], width: 16}
"""
DATA = "synthetic:24,size=48x64"
PASSING = """
name: tiny-int8
mode: int8
output: mask
checks: {builtin_only: true, max_partitions: 1, max_size_mb: 1}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    model = builder.build_model(schema_io.loads(TINY), 8, (32, 48))
    randomize_statistics(model)
    model.save(folder / "model.keras")
    (folder / "config.yaml").write_text(yaml.safe_dump({"train": {"data": DATA, "input_size": [32, 48]}}))
    return folder


def _run(argv):
    fv = flags.FlagValues()
    export_cli.define_flags(fv)
    args = fv(["mobileseg.export", *argv])
    return export_cli.run(fv, args)


def test_export_writes_qat_ptq_fp32_onnx_with_sidecars_and_a_report(run_dir, tmp_path):
    profile = tmp_path / "tiny-int8.yaml"
    profile.write_text(PASSING)
    from mobileseg.deploy.profiles import load_profile

    out = run_dir / "export"
    settings = ExportSettings(
        model_path=run_dir / "model.keras", out_dir=out, formats=("fp32", "int8", "onnx"), output="mask",
        profile=load_profile(str(profile)), data=DATA, qat_epochs=1, ptq=True, run_dir=run_dir,
        qat_model_path=run_dir / "model_qat.keras", calibration_images=4, batch_size=2, steps_per_epoch=1,
        eval_images=2, eager=True, command="test")
    result = export_run.export(settings, log=lambda text: None)
    assert result["passed"], result["failed_checks"]
    names = {Path(entry["file"]).name: entry for entry in result["files"]}
    assert set(names) == {"model_fp32.tflite", "model_int8.tflite", "model_int8_ptq.tflite", "model.onnx"}
    for name in names:
        sidecar = json.loads((out / name).with_suffix(".json").read_text())
        assert sidecar["labels"][0] == "sky" and sidecar["input"]["size"] == [32, 48]
        assert sidecar["output"]["mode"] == "mask"
    qat = names["model_int8.tflite"]
    assert qat["method"] == "qat" and qat["builtin_only"] and qat["xnnpack_partitions"] == 1
    assert qat["mask_upsample"] == packaging.MASK_UPSAMPLE  # the default head
    assert qat["qat"]["calibrated_tensors"] == [] and all(c["passed"] for c in qat["checks"])
    assert {"miou", "latency_ms", "speedup_vs_fp32", "gpu_compatible", "size_mb"} <= set(qat)
    assert names["model.onnx"]["parity"]["mask_agreement"] == 1.0
    assert json.loads((out / "report.json").read_text())["files"][1]["file"] == qat["file"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["export"]["files"] == list(names)

    # the exported int8 file computes what the quantization-aware Keras model computes
    qat_model = export_run.load_keras_model(run_dir / "model_qat.keras")
    x = np.round(images(3, (32, 48), seed=11))
    want = np.asarray(packaging.package(qat_model, "int8", "mask")(x))
    runner = Interpreter(model_path=str(out / "model_int8.tflite")).get_signature_runner()
    got = np.concatenate([runner(image=image[None].astype(np.uint8))["output_0"] for image in x])
    assert (got == want).mean() > 0.97
    # and the ONNX file what the float model computes
    float_mask = np.asarray(packaging.package(export_run.load_keras_model(run_dir / "model.keras"), "fp32", "mask")(
        x.astype(np.uint8)))
    np.testing.assert_array_equal(run_onnx(out / "model.onnx", x.astype(np.uint8)[:1]), float_mask[:1])


def test_a_failed_check_exits_1_naming_it_and_keeps_the_files(run_dir, tmp_path, capsys):
    profile = tmp_path / "strict.yaml"
    profile.write_text("name: strict\nmode: fp32\noutput: logits\n"
                       "checks: {builtin_only: true, max_size_mb: 0.000001}\n")
    out = tmp_path / "out"
    code = _run(["--run_dir", str(run_dir), "--out_dir", str(out), "--target", str(profile), "--noevaluate"])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED the strict profile" in captured.err and "model_fp32.tflite: max_size_mb:" in captured.err
    assert (out / "model_fp32.tflite").is_file() and (out / "report.json").is_file()
    assert "model_fp32.tflite" in captured.out  # the table


def test_a_bad_profile_is_a_clear_error(run_dir, tmp_path, capsys):
    profile = tmp_path / "typo.yaml"
    profile.write_text("name: typo\nmode: int8\nchecks: {max_partition: 1}\n")
    assert _run(["--run_dir", str(run_dir), "--target", str(profile)]) == 2
    assert f"{profile}: checks.max_partition: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs a quantization-aware model"),
    ([], "nothing to export"),
    (["--fp16", "--input", "int8"], "--input int8 is for int8 files only"),
    (["--int8", "--ptq", "--data", "nope:x"], "unknown kind 'nope'"),
    (["--fp32", "--input_size", "32"], "--input_size: input size '32' is not HEIGHTxWIDTH"),
    (["--int8", "--qat_epochs", "1", "--batch_size", "1000"], "--batch_size 1000: synthetic:24"),
    (["--fp32", "--mask_upsample", "2"], "--mask_upsample 2 is for --output mask; this export writes logits"),
    (["--fp32", "--mask_upsample", "1"], "--mask_upsample 1 is for --output mask; this export writes logits"),
])
def test_bad_requests_exit_2_with_a_message(run_dir, tmp_path, capsys, argv, message):
    model = tmp_path / "model.keras"  # alone: no quantization-aware model next to it, no run config
    model.write_bytes((run_dir / "model.keras").read_bytes())
    assert _run(["--model", str(model), "--data", DATA, *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_is_named(tmp_path, capsys):
    assert _run(["--run_dir", str(tmp_path), "--fp32"]) == 2
    assert f"no such model file: {tmp_path / 'model.keras'}" in capsys.readouterr().err


def test_tome_exports_the_network_with_tokens_merged_beside_the_run_s_own_export(tmp_path, capsys):
    from tests.arch.test_tome import tiny_segformer

    tiny_segformer(num_classes=8, input_size=(48, 64)).save(tmp_path / "model.keras")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"data": DATA}}))
    code = _run(["--run_dir", str(tmp_path), "--tome", "0.5", "--fp32", "--int8", "--ptq",
                 "--calibration_images", "2", "--eval_images", "1"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "export_tome0.5"
    assert not (tmp_path / "export").exists()
    report = json.loads((out / "report.json").read_text())
    merging = report["token_merging"]
    assert merging["ratio"] == 0.5 and merging["model"] == str(out / "model_tome0.5.keras")
    assert {s["tome_mode"] for s in merging["blocks"].values()} == {"kv_bsm", "q_bsm"}
    assert report["float"]["file"] == merging["model"] and "miou" in report["float"]
    files = {Path(entry["file"]).name: entry for entry in report["files"]}
    assert files["model_int8.tflite"]["builtin_only"] and files["model_fp32.tflite"]["builtin_only"]
    assert "TOPK_V2" in files["model_int8.tflite"]["ops"]  # the matching is in the file
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["export"]["tome"] == 0.5
    reloaded = export_run.load_keras_model(out / "model_tome0.5.keras")
    assert {layer.tome_mode for layer in reloaded.layers if hasattr(layer, "tome_mode")} == {"kv_bsm", "q_bsm"}


def test_tome_grid_exports_files_xnnpack_runs_whole(tmp_path, capsys):
    from tests.arch.test_tome import tiny_segformer

    tiny_segformer(num_classes=8, input_size=(48, 64)).save(tmp_path / "model.keras")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"data": DATA}}))
    code = _run(["--run_dir", str(tmp_path), "--tome", "0.75", "--tome_method", "grid", "--int8", "--ptq",
                 "--calibration_images", "2", "--eval_images", "1"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "export_tome_grid0.75"
    report = json.loads((out / "report.json").read_text())
    merging = report["token_merging"]
    assert merging["method"] == "grid" and merging["model"] == str(out / "model_tome_grid0.75.keras")
    assert {s["tome_mode"] for s in merging["blocks"].values()} == {"kv_pool", "q_grid"}
    (int8,) = [entry for entry in report["files"] if Path(entry["file"]).name == "model_int8.tflite"]
    assert int8["xnnpack_partitions"] == 1 and int8["fallback_ops"] == [] and "TOPK_V2" not in int8["ops"]
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["export"]["tome_method"] == "grid"


@pytest.mark.parametrize("tome, message", [
    ("1.5", "--tome: token merging ratio must be a number in [0, 1)"),
    ("-0.5", "--tome: token merging ratio must be a number in [0, 1)"),
    ("0.5", "model.keras has no efficient-attention block"),
    ("0.5 --tome_method grid", "--tome: token merging method grid merges s x s windows, so the ratio must be"),
])
def test_tome_out_of_range_or_without_attention_exits_2(run_dir, capsys, tmp_path, tome, message):
    assert _run(["--run_dir", str(run_dir), "--out_dir", str(tmp_path), "--fp32", "--tome", *tome.split()]) == 2
    assert message in capsys.readouterr().err


def test_a_full_disk_exits_1_naming_the_file_and_keeps_every_earlier_file(run_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert _run(["--run_dir", str(run_dir), "--out_dir", str(out), "--fp32", "--fp16", "--noevaluate"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert {"model_fp32.tflite", "model_fp16.tflite", "report.json"} <= set(before)

    def full_disk_at_fp16(handle, payload):  # the fp32 file and its sidecar are written, then the disk is full
        if ".model_fp16.tflite." in handle.name:
            handle.write(payload[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        handle.write(payload)

    monkeypatch.setattr(atomic_write, "_write_all", full_disk_at_fp16)
    capsys.readouterr()
    assert _run(["--run_dir", str(run_dir), "--out_dir", str(out), "--fp32", "--fp16", "--noevaluate"]) == 1
    err = capsys.readouterr().err
    assert (f"mobileseg.export: error: cannot write {out / 'model_fp16.tflite'}: No space left on device; the files "
            "written before it are kept") in err and "Traceback" not in err
    after = {path.name: path.read_bytes() for path in out.iterdir()}
    assert set(after) == set(before)  # no partial file left beside them
    assert after["model_fp16.tflite"] == before["model_fp16.tflite"] and after["report.json"] == before["report.json"]
    Interpreter(model_path=str(out / "model_fp32.tflite")).allocate_tensors()  # the one rewritten is whole


def test_an_export_into_a_folder_another_command_is_running_in_is_refused(run_dir, capsys):
    with hold(run_dir, "python -m mobileseg.train"):
        assert _run(["--run_dir", str(run_dir), "--fp32"]) == 2
    assert (f"{run_dir}: another command is running in this folder (pid {os.getpid()}: python -m mobileseg.train)"
            in capsys.readouterr().err)


@pytest.mark.parametrize("text, problem", [("data: [unclosed\n  x: :\n", "not valid YAML"),
                                           ("just a string\n", "expected a mapping of step sections")])
def test_a_damaged_run_config_is_refused_before_any_work(run_dir, tmp_path, capsys, text, problem):
    # the export ends by writing its section into config.yaml: a file it cannot read would fail it there, after the
    # files were written; it is named up front instead, and left as it is
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
    (folder / "config.yaml").write_text(text)
    assert _run(["--run_dir", str(folder), "--fp32", "--data", DATA, "--noevaluate"]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'config.yaml'}: {problem}" in err and "Traceback" not in err
    assert not (folder / "export").exists()
    assert (folder / "config.yaml").read_text() == text
