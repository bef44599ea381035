"""An int8-only export profiles its int8 file against an fp32 conversion of the same model: the report holds
the op-type profile, the printed table shows it, and the temporary fp32 file is gone."""

from pathlib import Path

import keras

from mobileseg.arch import builder, schema_io
from mobileseg.deploy import export_run
from mobileseg.deploy.export_settings import ExportSettings
from mobileseg.deploy.report import format_table
from tests.quant.networks import randomize_statistics

TINY = """
name: tiny
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2}]}
head: {op: light, inputs: [{branch: main}], width: 16}
"""


def test_an_int8_export_reports_where_its_time_goes_against_fp32(tmp_path):
    keras.utils.set_random_seed(0)
    model = builder.build_model(schema_io.loads(TINY), 8, (32, 48))
    randomize_statistics(model)
    model.save(tmp_path / "model.keras")
    out = tmp_path / "export"
    settings = ExportSettings(model_path=tmp_path / "model.keras", out_dir=out, formats=("int8",), ptq=True,
                              data="synthetic:8,size=48x64", calibration_images=2, evaluate=False, command="test")
    result = export_run.export(settings, log=lambda text: None)
    assert result["passed"], result["failed_checks"]
    assert sorted(path.name for path in out.iterdir()) == ["model_int8.json", "model_int8.tflite", "report.json"]
    (entry,) = result["files"]
    profile = result["op_profile"]
    assert profile["int8_file"] == "model_int8.tflite" and profile["fp32_file"] is None
    assert profile["int8_ms"] == entry["latency_ms"] and profile["speedup"] == entry["speedup_vs_fp32"]
    ops = {op["op"]: op for op in profile["ops"]}
    assert "Convolution (NHWC) IGEMM" in ops and ops["Convolution (NHWC) IGEMM"]["int8_nodes"] >= 1
    assert profile["int8_ops_ms"] > 0 and profile["fp32_ops_ms"] > 0
    table = format_table(result)
    assert "where int8 time goes (model_int8.tflite against an fp32 conversion" in table
    assert any(line.startswith("Convolution (NHWC) IGEMM") for line in table.splitlines())
    assert Path(out / "report.json").read_text().count('"op_profile"') == 1
