"""The fp32/int8 op-type comparison on real files: one row per op type of both files, the ratio, the error
against the whole-file times, and a failed profile reported rather than raised."""

from mobileseg.deploy.op_profile import compare_files, export_profile, format_profile, op_type
from mobileseg.latency.testing import tiny_tflite


def test_xnnpack_names_of_one_op_in_both_files_meet_on_one_row():
    assert op_type("Convolution (NHWC, F32) IGEMM") == op_type("Convolution (NHWC, QC8) IGEMM")
    assert op_type("Convolution (NHWC, F32) DWConv") == op_type("Convolution (NHWC, QC8) DWConv") != \
        op_type("Convolution (NHWC, QC8) IGEMM")
    assert op_type("Fully Connected (NC, QD8, F32, QC8W) GEMM") == "Fully Connected (NC) GEMM"
    assert op_type("Batch Matrix Multiply (NC, QS8)") == "Batch Matrix Multiply (NC)"
    assert op_type("Transpose (ND, X32) Transpose") == op_type("Transpose (ND, X8) Transpose")  # element widths
    assert op_type("Add (ND)") == "Add (ND)" and op_type("SOFTMAX") == "SOFTMAX"


def test_a_pair_of_real_files_compares_op_by_op_against_their_whole_times(tmp_path):
    fp32, int8 = tmp_path / "model_fp32.tflite", tmp_path / "model_int8.tflite"
    fp32.write_bytes(tiny_tflite("conv", size=48, channels=32, mode="fp32"))
    int8.write_bytes(tiny_tflite("conv", size=48, channels=32))
    profile = compare_files(fp32, int8, fp32_ms=0.4, int8_ms=0.2, rounds=3, round_runs=6)
    assert [op["op"] for op in profile["ops"]] == ["Convolution (NHWC) IGEMM"]
    (conv,) = profile["ops"]
    assert conv["fp32_nodes"] == conv["int8_nodes"] == 1 and conv["fp32_ms"] > 0 and conv["int8_ms"] > 0
    assert conv["speedup"] == round(conv["fp32_ms"] / conv["int8_ms"], 3)
    assert profile["speedup"] == 2.0 and profile["runs"] == 18
    assert profile["fp32_ops_ms"] == conv["fp32_ms"] and profile["fp32_ops_vs_whole"] == round(conv["fp32_ms"] / 0.4, 3)
    assert "XNNPACK" in profile["method"]
    table = format_profile(profile)
    assert table.splitlines()[1].startswith("Convolution (NHWC) IGEMM") and "whole file (thread CPU)" in table


def test_the_export_s_profile_names_its_files_and_reports_a_failure(tmp_path):
    fp32, int8 = tmp_path / ".fp32_reference.tflite", tmp_path / "model_int8.tflite"
    fp32.write_bytes(tiny_tflite("softmax", mode="fp32"))
    int8.write_bytes(tiny_tflite("softmax"))
    profile = export_profile(fp32, int8, None, None)
    assert profile["fp32_file"] is None and profile["int8_file"] == "model_int8.tflite"  # a temporary fp32 file
    assert profile["speedup"] is None and profile["int8_ops_vs_whole"] is None
    softmax = next(op for op in profile["ops"] if op["op"] == "SOFTMAX")  # int8 SOFTMAX: LiteRT's kernel
    assert softmax["int8_nodes"] == 1 and softmax["fp32_nodes"] == 0 and softmax["speedup"] is None
    (tmp_path / "broken.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    failed = export_profile(fp32, tmp_path / "broken.tflite", None, None)
    assert set(failed) == {"error"} and "broken.tflite" in failed["error"]
