"""The comparison table of several models x settings x phones."""

from __future__ import annotations

from mobileseg.android.table import format_table


def record(model, threads, avg, **extra):
    return {"model_name": model, "threads": threads, "delegate": "xnnpack", "avg_ms": avg,
            "std_ms": 0.25, "median_ms": avg, "p95_ms": avg + 1, "init_ms": 12.0,
            "peak_mb": 30.0, "runs": 50, **extra}


def test_rows_grouped_by_setting_then_phone_with_ratio_to_the_fastest():
    result = {"devices": [
        {"fingerprint": {"id": "A1", "model": "Pixel 7"},
         "records": [record("a.tflite", 1, 20.0), record("a.tflite", 4, 8.0),
                     record("b.tflite", 1, 10.0), record("b.tflite", 4, 6.0)]},
        {"fingerprint": {"id": "B2", "model": "SM-S911B"},
         "records": [record("a.tflite", 1, 15.0), record("b.tflite", 1, 30.0)]}]}
    lines = format_table(result).splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], r[3], r[-1]) for r in rows] == [
        ("a.tflite", "1", "Pixel", "2.00x"), ("b.tflite", "1", "Pixel", "1.00x"),
        ("a.tflite", "1", "SM-S911B", "1.00x"), ("b.tflite", "1", "SM-S911B", "2.00x"),
        ("a.tflite", "4", "Pixel", "1.33x"), ("b.tflite", "4", "Pixel", "1.00x")]
    assert rows[0][6:12] == ["20.00", "0.25", "20.00", "21.00", "12.00", "30.0"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up


def test_errors_are_shown():
    failed = {"model_name": "b.tflite", "threads": 4, "delegate": "gpu", "avg_ms": None,
              "error": {"type": "BenchmarkFailedError", "message": "Failed to apply GPU"}}
    result = {"devices": [{"fingerprint": {"id": "A1", "model": "Pixel 7"},
                           "records": [record("a.tflite", 4, 8.0), failed],
                           "error": {"type": "DeviceLost", "message": "device A1 vanished"}}]}
    text = format_table(result)
    assert "error: BenchmarkFailedError" in text
    assert text.endswith("Pixel 7 [A1] stopped: device A1 vanished\n"
                         "b.tflite on Pixel 7 [A1]: Failed to apply GPU")


def test_empty_report():
    assert format_table({"devices": []}) == "(no measurement)"
