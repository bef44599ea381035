import json

import keras
import numpy as np

from mobileseg.deploy import packaging, report
from mobileseg.deploy.profiles import Checks
from mobileseg.latency.testing import tiny_tflite


def test_non_builtin_ops_are_named():
    assert report.non_builtin(["CONV_2D", "FlexErf", "CUSTOM", "my_op"]) == ["FlexErf", "CUSTOM", "my_op"]


def test_gpu_check_catches_ops_the_delegate_does_not_take():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    logits = packaging.convert(model, "fp16", "logits", "float32")
    mask = packaging.convert(model, "fp16", "mask", "float32")
    assert report.gpu_compatibility(logits) == {"compatible": True, "issues": []}
    verdict = report.gpu_compatibility(mask)
    assert not verdict["compatible"] and "ARG_MAX: not a GPU delegate op" in verdict["issues"]


def test_describe_and_time_a_file(tmp_path):
    path = tmp_path / "conv.tflite"
    path.write_bytes(tiny_tflite("conv"))
    info = report.describe_tflite(path)
    assert info["builtin_only"] and info["ops"] == {"CONV_2D": 1} and info["size_mb"] < 0.01
    timing = report.time_tflite([path, tmp_path / "conv.tflite"], threads=1, max_seconds=2)
    assert timing[str(path)]["xnnpack_partitions"] == 1 and timing[str(path)]["latency_ms"] > 0
    assert timing[str(path)]["clock"] == "thread_cpu"  # one thread on a shared machine: the idle-core latency
    assert report.time_tflite([path], threads=2, max_seconds=1)[str(path)]["clock"] == "wall"


def test_checks_pass_fail_and_refuse_what_was_not_measured():
    checks = Checks(builtin_only=True, max_partitions=1, gpu_compatible=True, max_size_mb=1.0,
                    min_speedup_vs_fp32=1.8, max_miou_drop=0.5, max_latency_ms=10.0)
    entry = {"builtin_only": True, "xnnpack_partitions": 2, "gpu_compatible": False, "gpu_issues": ["ARG_MAX: x"],
             "size_mb": 0.5, "latency_ms": 4.0, "miou": 0.60}
    results = {c["check"]: c for c in report.apply_checks(entry, checks, fp32_latency_ms=9.0, float_miou=0.604)}
    assert {name for name, c in results.items() if not c["passed"]} == {"max_partitions", "gpu_compatible"}
    assert results["min_speedup_vs_fp32"]["value"] == 2.25 and results["max_miou_drop"]["value"] == 0.4
    no_data = report.apply_checks(entry, Checks(max_miou_drop=0.5), 9.0, None)
    assert not no_data[0]["passed"] and "give --data" in no_data[0]["note"]


def test_the_table_shows_files_failures_and_left_out_ops():
    table = report.format_table({"float": {"file": "model.keras", "miou": 0.61}, "files": [
        {"file": "model_int8.tflite", "mode": "int8", "method": "ptq", "size_mb": 1.0, "builtin_only": True,
         "xnnpack_partitions": 3, "fallback_ops": ["HARD_SWISH", "HARD_SWISH"], "latency_ms": 2.0, "miou": 0.6,
         "miou_drop": 1.0, "checks": [{"check": "max_partitions", "limit": 1, "value": 3, "passed": False}]}]})
    assert "left out of XNNPACK: HARD_SWISH x2" in table and "FAILED max_partitions: 3 (limit 1)" in table
    json.dumps(table)


def test_qat_coverage_finds_ranges_the_converter_calibrated():
    from mobileseg.quant.qat import quantize_model
    from mobileseg.quant.qat_calibration import calibrate

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs) + 1.0)
    qat = quantize_model(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    calibrate(qat, [x])
    flatbuffer = packaging.convert(qat, "int8")
    assert report.qat_coverage(qat, flatbuffer)["calibrated_tensors"] == []
    last = qat.layers[-1]  # the quantizer of the ADD output
    last.range_max.assign(1e3)  # the file no longer holds this range
    assert report.qat_coverage(qat, flatbuffer)["unused_quantizers"] == [last.name]
