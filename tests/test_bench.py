"""python -m mobileseg.bench: local comparison table, JSON output, clear errors."""

import json
import os
import subprocess
import sys

import pytest

from mobileseg import bench
from mobileseg.latency.testing import tiny_tflite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_KEYS = {"model", "threads", "delegate", "avg_ms", "median_ms", "min_ms", "p90_ms", "std_ms",
               "init_ms", "peak_mb", "runs", "xnnpack_partitions", "fallback_ops"}
FAST = ["--warmup_runs", "2", "--min_runs", "10", "--max_runs", "30"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    conv, softmax = folder / "conv.tflite", folder / "softmax.tflite"
    conv.write_bytes(tiny_tflite("conv"))
    softmax.write_bytes(tiny_tflite("softmax"))
    return str(conv), str(softmax)


def run_bench(*args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "mobileseg.bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_json_comparison_of_two_models_at_two_thread_counts(models, tmp_path):
    out = tmp_path / "sub" / "bench.json"
    result = run_bench("--model", ",".join(models), "--threads", "1,2", "--json", "--out", str(out),
                       *FAST)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert json.loads(out.read_text()) == data
    (device,) = data["devices"]
    assert device["fingerprint"]["runtime"] == "ai-edge-litert"
    records = device["records"]
    assert [(r["model"], r["threads"]) for r in records] == [
        (models[0], 1), (models[1], 1), (models[0], 2), (models[1], 2)]
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["min_ms"] <= record["median_ms"] <= record["p90_ms"]
    assert [r["fallback_ops"] for r in records[:2]] == [[], ["SOFTMAX"]]
    assert [r["xnnpack_partitions"] for r in records[:2]] == [1, 2]


def test_the_thread_cpu_clock_is_recorded_and_named(models):
    result = run_bench("--model", models[0], "--clock", "thread_cpu", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    (device,) = json.loads(result.stdout)["devices"]
    assert device["clock"] == "thread_cpu" and device["records"][0]["median_ms"] > 0
    table = run_bench("--model", models[0], "--clock", "thread_cpu", *FAST)
    assert "thread CPU clock" in table.stdout.splitlines()[0]


def test_table_output_with_repeated_model_flags(models):
    result = run_bench("--model", models[0], "--model", models[1], *FAST)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "cores" in lines[0] and "vs first" in lines[1] and "fallback ops" in lines[1]
    assert lines[2].startswith(models[0]) and "1.00x" in lines[2]
    assert lines[3].startswith(models[1]) and lines[3].rstrip().endswith("SOFTMAX")


@pytest.mark.parametrize("args, message", [
    (["--model", "/nonexistent/model.tflite"], "no such TFLite file: /nonexistent/model.tflite"),
    ([], "no model given"),
    (["--model", "{conv}", "--threads", "two"], "bad --threads 'two'"),
    (["--model", "{conv}", "--threads", "0,1"], "bad --threads '0,1'"),
    (["--model", "{conv}", "--delegate", "gpu"], "--delegate gpu needs a phone (--adb)"),
    (["--model", "{conv}", "--serial", "R58M"], "--serial and --op_profile need --adb"),
    (["--model", "{conv}", "extra_argument"], "unexpected arguments"),
    (["--model", "{conv}", "--clock", "thread_cpu", "--threads", "1,2"], "it needs --threads 1, got 1,2"),
    (["--model", "{conv}", "--clock", "thread_cpu", "--adb"], "a phone's benchmark_model has the wall clock only"),
])
def test_bad_input_exits_2_with_a_message(models, args, message):
    result = run_bench(*[arg.format(conv=models[0]) for arg in args])
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_not_a_tflite_file_is_named(tmp_path):
    fake = tmp_path / "weights.tflite"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    result = run_bench("--model", str(fake))
    assert result.returncode == 2
    assert f"{fake} is not a TFLite model" in result.stderr


def dynamic_shape_tflite() -> bytes:
    """A conv whose input height and width are -1 (any size), as the converter writes for a (None, None) input."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))
    serve = tf.function(lambda image: model(image), input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32)])
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model).convert()


def test_a_dynamic_shape_file_is_refused_not_timed_at_1x1(tmp_path):
    dynamic = tmp_path / "dynamic.tflite"
    dynamic.write_bytes(dynamic_shape_tflite())
    for extra in ([], ["--adb"]):  # refused before a phone is looked for
        result = run_bench("--model", str(dynamic), *extra, *FAST)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert (f"mobileseg.bench: error: {dynamic}: input 'serving_default_image:0' has a dynamic shape "
                "[1, -1, -1, 3] (-1: any size); LiteRT would time it at [1, 1, 1, 3], not at an image's size: "
                "convert it at a fixed input size (python -m mobileseg.export --input_size HxW)") in result.stderr


def test_helpers():
    assert bench.parse_threads("4,1,4") == [4, 1]
    assert bench.split_models(["a.tflite, b.tflite", "", "c.tflite"]) == ["a.tflite", "b.tflite", "c.tflite"]
    with pytest.raises(bench.BenchInputError, match="bad --threads '1,-2'"):
        bench.parse_threads("1,-2")


def test_format_table_relative_to_first_model_per_thread_count():
    def record(model, threads, median):
        return {"model": model, "threads": threads, "delegate": "xnnpack", "avg_ms": median,
                "median_ms": median, "min_ms": median, "p90_ms": median, "std_ms": 0.0,
                "init_ms": 1.0, "peak_mb": None, "runs": 10, "xnnpack_partitions": 3,
                "fallback_ops": ["SOFTMAX", "GELU", "SOFTMAX"]}

    text = bench.format_table({"devices": [{"fingerprint": {"cpu": "cpu X"}, "records": [
        record("a", 1, 2.0), record("b", 1, 3.0), record("a", 4, 1.0), record("b", 4, 0.5)]}]})
    rows = text.splitlines()[2:]
    assert ["1.00x", "1.50x", "1.00x", "0.50x"] == [row.split()[9] for row in rows]
    assert rows[0].endswith("SOFTMAX x2, GELU") and rows[0].split()[8] == "-"


@pytest.mark.parametrize("error, code", [("AdbNotFoundError('adb')", 2), ("DeviceLost('R58M', 'timing')", 3),
                                         ("NoDeviceError()", 3), ("BenchmarkFailedError('R58M', 'm.tflite', 'x')", 1)])
def test_adb_failures_exit_as_search_and_pipeline_do(models, monkeypatch, capsys, error, code):
    from absl import flags

    from mobileseg.android import errors

    def failing(*args, **kwargs):
        raise eval(error, vars(errors))

    monkeypatch.setattr(bench, "_bench_adb", failing)
    flag_values = flags.FlagValues()
    bench._define_flags(flag_values)
    argv = flag_values(["mobileseg.bench", "--model", models[0], "--adb"])
    assert bench.run(flag_values, argv) == code
    assert "mobileseg.bench: error:" in capsys.readouterr().err
