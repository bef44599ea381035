"""measure_tflite / measure_interleaved on tiny real models: statistics, delegate report, errors."""

import json

import pytest

from mobileseg import litert_measure as measure
from mobileseg.latency.testing import tiny_tflite

RECORD_KEYS = {"model", "threads", "delegate", "avg_ms", "median_ms", "min_ms", "p90_ms", "std_ms",
               "init_ms", "peak_mb", "runs", "xnnpack_partitions", "fallback_ops"}
FAST = dict(warmup=2, min_runs=10, max_runs=40)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for kind, mode in [("conv", "int8"), ("softmax", "int8"), ("conv", "fp32")]:
        paths[f"{kind}_{mode}"] = folder / f"{kind}_{mode}.tflite"
        paths[f"{kind}_{mode}"].write_bytes(tiny_tflite(kind, mode=mode))
    return paths


def test_record_statistics_are_sane(models):
    record = measure.measure_tflite(models["conv_int8"], threads=1, **FAST)
    data = record.to_dict()
    assert set(data) == RECORD_KEYS
    assert json.loads(json.dumps(data)) == data
    assert data["model"] == str(models["conv_int8"])
    assert data["threads"] == 1 and data["delegate"] == "xnnpack"
    assert 0 < data["min_ms"] <= data["median_ms"] <= data["p90_ms"]
    assert data["min_ms"] <= data["avg_ms"] and data["std_ms"] >= 0
    assert 10 <= data["runs"] <= 40 and data["init_ms"] > 0
    assert data["peak_mb"] is None or data["peak_mb"] >= 0


def test_pure_conv_int8_is_one_xnnpack_partition(models):
    record = measure.measure_tflite(models["conv_int8"], **FAST)
    assert record.xnnpack_partitions == 1 and record.fallback_ops == []


def test_fp32_conv_is_one_xnnpack_partition(models):
    record = measure.measure_tflite(models["conv_fp32"], **FAST)
    assert record.xnnpack_partitions == 1 and record.fallback_ops == []


def test_int8_softmax_falls_back_to_builtin_kernels(models):
    # XNNPACK (LiteRT 2.3) has no int8 SOFTMAX: the convs on each side become two partitions.
    record = measure.measure_tflite(models["softmax_int8"], **FAST)
    assert record.fallback_ops == ["SOFTMAX"]
    assert record.xnnpack_partitions == 2


def test_without_delegate_every_op_is_builtin(models):
    record = measure.measure_tflite(models["conv_int8"], delegate="none", **FAST)
    assert record.delegate == "none"
    assert record.xnnpack_partitions == 0 and record.fallback_ops == ["CONV_2D"]


def test_threads_and_bytes_input():
    record = measure.measure_tflite(tiny_tflite("conv"), threads=2, name="conv-2t", **FAST)
    assert record.threads == 2 and record.model == "conv-2t"


def test_bounded_when_never_stable(models):
    record = measure.measure_tflite(models["conv_int8"], min_runs=5, max_runs=25, round_runs=10,
                                    stable_rel=0.0, warmup=1)
    assert record.runs == 25


def test_time_budget_stops_after_one_round(models):
    record = measure.measure_tflite(models["conv_int8"], min_runs=100, max_runs=1000,
                                    round_runs=7, max_seconds=0.0, warmup=1)
    assert record.runs == 7


def test_interleaved_keeps_order_and_names(models):
    records = measure.measure_interleaved([models["softmax_int8"], models["conv_int8"]],
                                          names=["a", "b"], **FAST)
    assert [r.model for r in records] == ["a", "b"]
    assert [r.fallback_ops for r in records] == [["SOFTMAX"], []]
    assert all(r.runs >= 10 for r in records)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        measure.measure_tflite(tmp_path / "absent.tflite")


def test_not_a_tflite_file_is_named(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("hello, this is not a flatbuffer")
    with pytest.raises(ValueError, match="notes.tflite is not a TFLite model"):
        measure.measure_tflite(path)


def test_truncated_tflite_is_named(tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tiny_tflite("conv")[:200])
    with pytest.raises(ValueError, match="cut.tflite: LiteRT cannot load this model"):
        measure.measure_tflite(path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(threads=0), "threads must be an int >= 1"),
    (dict(threads=True), "threads must be an int >= 1"),
    (dict(min_runs=10, max_runs=5), "max_runs \\(5\\) must be >= min_runs \\(10\\)"),
    (dict(stable_rel=1.5), "stable_rel"),
    (dict(delegate="gpu"), "gpu/nnapi need a phone"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure.measure_tflite(tiny_tflite("conv"), **kwargs)


def test_record_from_dict_names_bad_keys():
    data = measure.measure_tflite(tiny_tflite("conv"), **FAST).to_dict()
    assert measure.LatencyRecord.from_dict(data).to_dict() == data
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\], missing keys \['runs'\]"):
        measure.LatencyRecord.from_dict({**{k: v for k, v in data.items() if k != "runs"}, "extra": 1})


def test_thread_cpu_clock_counts_the_invoking_threads_cpu_time(models, monkeypatch):
    record = measure.measure_tflite(models["conv_int8"], threads=1, clock="thread_cpu", **FAST)
    assert 0 < record.min_ms <= record.median_ms and 10 <= record.runs <= 40
    # time the scheduler gives to other processes is not counted: a sleeping invoke costs ~0
    timed = measure._Timed(models["conv_int8"], None, 1, "xnnpack", 0, 0, clock="thread_cpu")
    monkeypatch.setattr(timed.interpreter, "invoke", lambda: __import__("time").sleep(0.02))
    timed.run_round(3, rewarm=False)
    assert max(timed.samples) < 5.0  # ms: far below the 20 ms of wall time each took
    with pytest.raises(ValueError, match="needs threads=1, got 2"):
        measure.measure_tflite(models["conv_int8"], threads=2, clock="thread_cpu")
    with pytest.raises(ValueError, match="clock must be one of wall, thread_cpu"):
        measure.measure_tflite(models["conv_int8"], clock="sundial")
