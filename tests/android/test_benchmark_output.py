"""The benchmark_model output parser on a fixture of every format the tool has printed."""

from __future__ import annotations

import json

import pytest

from mobileseg.android.benchmark_output import parse_benchmark_output, strip_prefix
from mobileseg.android.errors import BenchmarkOutputError, TruncatedOutputError
from mobileseg.android.run_stats import RunStats
from tests.android.fake_phone import FIXTURES


def parse_fixture(name: str):
    return parse_benchmark_output((FIXTURES / name).read_text())


def test_2018_average_inference_timings():
    out = parse_fixture("v2018_average_inference_timings.txt")
    assert out.format == "average_inference_timings"
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (29889.4, 41372, 29405.2)
    assert out.first_inference_us is None
    assert out.warmup == RunStats(17, 35521, 29407, 29102, 35521, 29889.4, 1487)
    assert out.inference == RunStats(50, 29388, 29211, 28874, 30560, 29405.2, 318)
    summary = out.summary_ms()
    assert summary["avg_ms"] == 29.4052 and summary["std_ms"] == 0.318
    assert summary["median_ms"] is None and summary["p95_ms"] is None
    assert summary["peak_mb"] is None and out.op_profile is None


def test_2018_no_stats_label_and_single_warmup_run():
    out = parse_fixture("v2018_no_stats_label.txt")
    assert out.inference_avg_us == 79650.3 and out.init_us == 12705
    assert out.warmup_avg_us == 88613
    # "count=1 curr=88613": one run, so min = max = avg = curr and no spread.
    assert out.warmup == RunStats(1, 88613, 88613, 88613, 88613, 88613, 0.0)
    assert out.inference.count == 50 and out.inference.max_us == 81960


def test_2019_op_profiling_tables_before_summary_with_start_column():
    out = parse_fixture("v2019_op_profiling_start_column.txt")
    # The profiler's own "Timings (microseconds): count=118 ..." is not a run phase.
    assert out.inference == RunStats(118, 8725, 8402, 8311, 9023, 8497.6, 119)
    assert out.warmup.count == 58
    assert [row.op for row in out.op_profile] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "CONV_2D", "CONV_2D",
        "RESIZE_BILINEAR", "ARG_MAX"]
    assert out.op_profile[0].name == "[seg/stem/conv/Relu6]"
    assert out.op_profile[0].avg_ms == 1.874
    # Old builds print [times called] 0: a node still runs once per inference.
    assert out.op_profile[0].times_called == 0 and out.op_profile[0].ms_per_run == 1.874
    records = out.op_profile_records()
    assert records[4]["op"] == "CONV_2D" and records[4]["share"] == pytest.approx(2.430 / 8.470,
                                                                                  abs=1e-6)
    assert sum(r["share"] for r in records) == pytest.approx(1.0, abs=1e-5)
    types = {row["op"]: row for row in out.op_type_records()}
    assert types["CONV_2D"]["count"] == 4 and types["CONV_2D"]["ms_per_run"] == 5.946
    assert types["ADD"]["share"] == pytest.approx(0.158 / 8.470, abs=1e-6)


def test_2020_inference_timings_with_peak_memory_footprint():
    out = parse_fixture("v2020_inference_timings_peak_memory.txt")
    assert out.format == "inference_timings"
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        57114, 16207, 12214.5, 11905.8)
    assert out.inference == RunStats(84, 11897, 11861, 11688, 12540, 11905.8, 142)
    assert (out.mem_init_mb, out.mem_overall_mb) == (4.14844, 21.7461)
    assert out.peak_mem_mb == 21.7461  # 2020 builds call this line the peak footprint
    assert out.model_size_mb == 1.38215
    assert out.delegation == ({"delegate": "XNNPACK", "coverage": "partial", "kernels": 3},)


def test_2022_info_prefix_memory_delta_and_periodic_peak():
    out = parse_fixture("v2022_info_prefix_memory_delta.txt")
    summary = out.summary_ms()
    assert summary == {
        "avg_ms": 23.8714, "std_ms": 0.204, "min_ms": 23.597, "max_ms": 24.733,
        "median_ms": None, "p5_ms": None, "p95_ms": None, "init_ms": 31.58,
        "first_ms": 27.403, "warmup_ms": 24.1177, "runs": 50, "peak_mb": 33.4492,
        "mem_overall_mb": 18.2266}
    assert out.mem_init_mb == 5.96094
    assert out.delegation == ({"delegate": "XNNPACK", "coverage": "full", "kernels": 1},)
    assert out.errors == ()


def test_2024_percentiles_and_operator_wise_profile():
    out = parse_fixture("v2024_percentiles_op_profile.txt")
    assert out.inference == RunStats(226, 4611, 4402, 4290, 5032, 4418.73, 98, 4321, 4401, 4587)
    assert out.warmup == RunStats(103, 6874, 4433, 4301, 6874, 4862.11, 412, 4337, 4698, 5811)
    summary = out.summary_ms()
    assert (summary["avg_ms"], summary["median_ms"], summary["p5_ms"], summary["p95_ms"]) == (
        4.41873, 4.401, 4.321, 4.587)
    assert summary["peak_mb"] == 29.6836 and summary["mem_overall_mb"] == 14.3008
    # The regular runs' table, not the initialization one (ModifyGraphWithDelegate...).
    assert [row.op for row in out.op_profile] == [
        "QUANTIZE", "Convolution (NHWC, QC8) IGEMM", "Convolution (NHWC, QC8) DWConv",
        "Convolution (NHWC, QC8) GEMM", "Add (ND, QS8)", "ARG_MAX"]
    gemm = out.op_profile[3]
    assert (gemm.name, gemm.avg_ms, gemm.times_called) == (
        "Delegate/Convolution (NHWC, QC8) GEMM:2", 0.109, 12)
    records = out.op_profile_records()
    total = 0.204 + 1.392 + 0.121 * 6 + 0.109 * 12 + 0.027 * 4 + 0.385
    assert records[3]["ms_per_run"] == 1.308
    assert records[3]["share"] == pytest.approx(1.308 / total, abs=1e-6)
    assert [row.op for row in out.op_types][:2] == ["Convolution (NHWC, QC8) IGEMM",
                                                    "Convolution (NHWC, QC8) GEMM"]
    assert out.op_types[1].ms_per_run == 1.308 and out.op_types[1].times_called == 12
    json.dumps(out.op_profile_records() + out.op_type_records())


def test_op_tables_pasted_with_spaces_instead_of_tabs():
    text = (FIXTURES / "v2024_percentiles_op_profile.txt").read_text()
    pasted = text.replace("\t", "    ")  # how the tables look once copied into an issue
    assert parse_benchmark_output(pasted).op_profile == parse_benchmark_output(text).op_profile


def test_scientific_notation_and_one_run_warmup():
    out = parse_fixture("v2024_scientific_notation.txt")
    assert out.inference_avg_us == 1240270.0 and out.warmup_avg_us == 1301230.0
    assert out.inference == RunStats(5, 1253311, 1229861, 1229861, 1253311, 1240270.0, 7680,
                                     1229861, 1239870, 1253311)
    assert out.warmup == RunStats(1, 1301234, 1301234, 1301234, 1301234, 1301234, 0.0,
                                  1301234, 1301234, 1301234)
    summary = out.summary_ms()
    assert (summary["avg_ms"], summary["std_ms"], summary["init_ms"]) == (1240.27, 7.68, 211.532)
    assert summary["peak_mb"] is None  # no --report_peak_memory_footprint
    assert summary["mem_overall_mb"] == 97.8516


def test_failed_run_reports_its_errors():
    with pytest.raises(BenchmarkOutputError, match="Failed to apply GPU delegate") as info:
        parse_fixture("v2024_gpu_delegate_failed.txt")
    assert not isinstance(info.value, TruncatedOutputError)


@pytest.mark.parametrize("lines_before_summary", [1, 3, 8])
def test_output_cut_short_is_truncated(lines_before_summary):
    lines = (FIXTURES / "v2022_info_prefix_memory_delta.txt").read_text().splitlines()
    summary = next(i for i, line in enumerate(lines) if "Inference timings" in line)
    kept = lines[:summary - lines_before_summary + 1]
    with pytest.raises(TruncatedOutputError) as info:
        parse_benchmark_output("\n".join(kept))
    last = next(line for line in reversed(kept) if line.strip())
    assert repr(last) in str(info.value) and info.value.tail.endswith(last)


def test_text_that_is_not_benchmark_output():
    with pytest.raises(BenchmarkOutputError, match="no 'Inference timings' line"):
        parse_benchmark_output("/system/bin/sh: benchmark_model: inaccessible or not found")


def test_prefixes_all_same_and_empty_warmup_phase():
    text = "\n".join([
        "I0412 10:01:02.345678   4321 benchmark_model.cc:150] Initialized session in 2ms.",
        "WARNING: Running benchmark for at least 0 iterations and at least -1 seconds",
        "INFO: count=0",
        "INFO: Running benchmark for at least 3 iterations and at least 1 seconds",
        "INFO: count=3 curr=7000(all same) p5=7000 median=7000 p95=7000",
        "INFO: Inference timings in us: Init: 2000, First inference: -nan, "
        "Warmup (avg): nan, Inference (avg): 7000"])
    out = parse_benchmark_output(text)
    assert out.warmup is None and out.first_inference_us is None and out.warmup_avg_us is None
    assert out.inference == RunStats(3, 7000, 7000, 7000, 7000, 7000, 0.0, 7000, 7000, 7000)


def test_strip_prefix_leaves_plain_lines():
    assert strip_prefix("count=1 curr=5\r\n") == "count=1 curr=5"
    assert strip_prefix("ERROR: Benchmarking failed.") == "Benchmarking failed."


@pytest.mark.parametrize("line", ["count=3 first=1 curr=2", "count=x", "first=1 curr=2",
                                  "count=0"])
def test_bad_statistics_lines(line):
    with pytest.raises(BenchmarkOutputError):
        RunStats.parse(line)
