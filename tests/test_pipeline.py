"""python -m mobileseg.pipeline: input checks, skipping finished steps, failures, the summary.

The orchestration tests substitute each step's command with a small script that writes the
step's outputs (or fails), so they run in seconds.
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from mobileseg import pipeline, pipeline_settings, pipeline_steps
from mobileseg.run_lock import hold

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_space" / "demo.yaml"

FAKE_STEP = textwrap.dedent('''
    """A stand-in for one pipeline step: takes the run folder's lock as the real steps do (the pipeline's),
    logs its name, writes its outputs, exits as told."""
    import json, pathlib, sys
    from mobileseg.run_lock import hold

    step, run_dir, code = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3])
    hold(run_dir, step).__enter__()  # held until the script exits
    with open(run_dir / "steps.log", "a") as log:
        log.write(step + "\\n")
    if code or step in sys.argv[4:]:  # a failure, or a step told to write nothing
        sys.exit(code)
    if step == "search":
        (run_dir / "arch.yaml").write_text("name: demo_trial5\\n")
        (run_dir / "pareto.json").write_text(json.dumps({"chosen": {
            "trial": 5, "reason": "the best proxy mIoU within the 4 ms target", "latency_ms": 2.5, "miou": 0.3}}))
        (run_dir / "pareto.png").write_bytes(b"png")
    elif step == "train":
        (run_dir / "model.keras").write_bytes(b"keras")
        (run_dir / "train_state.json").write_text(json.dumps({"status": "finished", "epoch": 2}))
    elif step == "export":
        (run_dir / "export").mkdir(exist_ok=True)
        (run_dir / "export" / "model_int8.tflite").write_bytes(b"t" * 2048)
        (run_dir / "export" / "report.json").write_text(json.dumps({
            "split": "test", "float": {"file": str(run_dir / "model.keras"), "miou": 0.5, "images": 3},
            "files": [{"file": str(run_dir / "export" / "model_int8.tflite"), "mode": "int8", "miou": 0.42}]}))
    elif step == "bench":
        (run_dir / "bench").mkdir(exist_ok=True)
        (run_dir / "bench" / "local.json").write_text(json.dumps({"devices": [{
            "fingerprint": {"cpu": "Test CPU", "cores": 2},
            "records": [{"model": str(run_dir / "export" / "model_int8.tflite"), "threads": 1,
                         "median_ms": 3.25}]}]}))
''')


@pytest.fixture
def settings(tmp_path):
    return pipeline_settings.PipelineSettings(space=SPACE, data="synthetic:8", run_dir=tmp_path / "run",
                                     target_latency_ms=4.0, train_epochs=2, batch_size=2)


def fake_commands(tmp_path, settings, codes=None, silent=()):
    """Each step -> the fake step script; `codes` gives a step's exit code, `silent` steps write nothing."""
    script = tmp_path / "fake_step.py"
    script.write_text(FAKE_STEP)

    def command(step):
        return lambda s: [sys.executable, str(script), step, str(s.run_dir), str((codes or {}).get(step, 0)), *silent]

    return {step: command(step) for step in pipeline_settings.STEPS}


def steps_run(settings):
    log = settings.run_dir / "steps.log"
    return log.read_text().split() if log.exists() else []


def test_a_fresh_run_runs_every_step_in_order_and_summarizes_the_files(tmp_path, settings, capsys):
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 0
    assert steps_run(settings) == ["search", "train", "export", "bench"]
    out = capsys.readouterr().out
    assert "mIoU float (test, 3 images)  50.00 %" in out
    assert "mIoU int8 (test, 3 images)   42.00 %" in out
    assert "3.250 ms median, 1 thread(s), Test CPU (target 4 ms: met)" in out
    assert "int8 size                    0.002 MB" in out
    assert ("searched network             demo_trial5: the best proxy mIoU within the 4 ms target "
            "(predicted 2.500 ms, proxy mIoU 30.00 %)") in out
    assert f"Pareto plot                  {settings.run_dir / 'pareto.png'}\n" in out
    assert f"int8 TFLite                  {settings.run_dir / 'export/model_int8.tflite'}\n" in out
    summary = json.loads((settings.run_dir / "summary.json").read_text())
    assert summary["miou_int8"] == 0.42 and summary["latency_ms"] == 3.25 and summary["meets_target"] is True
    assert [info["ran"] for info in summary["steps"].values()] == [True] * 4
    assert summary["files"]["benchmark"] == str(settings.run_dir / "bench" / "local.json")
    assert summary["latency_error_pct"] == -23.08 and "predicted 2.500 ms, error -23.1 %" in out
    chosen = json.loads((settings.run_dir / "pareto.json").read_text())["chosen"]
    assert (chosen["measured_ms"], chosen["latency_error_pct"], chosen["measured_device"]) == (3.25, -23.08, "Test CPU")
    config = (settings.run_dir / "config.yaml").read_text()
    assert "pipeline:" in config and "eval_split: test" in config


def test_the_summary_names_the_run_report_among_the_files(tmp_path, settings, capsys):
    commands = {**fake_commands(tmp_path, settings), "report": lambda s: [
        sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1], 'report.html').write_text('<html>')",
        str(s.run_dir)]}
    assert pipeline.run_pipeline(settings, commands) == 0
    page = settings.run_dir / "report.html"
    assert page.read_text() == "<html>"
    summary = json.loads((settings.run_dir / "summary.json").read_text())
    assert summary["files"]["run report"] == str(page)
    printed = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("run report")]
    assert printed == [["run", "report", str(page)]]  # not "(missing)": the report is written before it is printed


def test_finished_steps_are_skipped_and_a_step_that_runs_reruns_the_later_ones(tmp_path, settings, capsys):
    commands = fake_commands(tmp_path, settings)
    assert pipeline.run_pipeline(settings, commands) == 0
    assert pipeline.run_pipeline(settings, commands) == 0
    assert steps_run(settings) == ["search", "train", "export", "bench"]
    assert "search: done already" in capsys.readouterr().out

    (settings.run_dir / "bench" / "local.json").unlink()
    assert pipeline.run_pipeline(settings, commands) == 0
    assert steps_run(settings)[4:] == ["bench"]

    # Training asked for more epochs than were trained: train resumes, export and bench follow.
    longer = pipeline_settings.PipelineSettings(**{**vars(settings), "train_epochs": 3})
    (settings.run_dir / "train_state.json").write_text(json.dumps({"status": "finished", "epoch": 2}))
    assert pipeline.run_pipeline(longer, fake_commands(tmp_path, longer, silent=("train",))) == 1
    assert steps_run(settings)[5:] == ["train"]
    assert "step train exited 0 but its outputs are not all in" in capsys.readouterr().err


def test_a_failing_step_stops_the_run_and_its_exit_code_is_named(tmp_path, settings, capsys):
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings, codes={"train": 2})) == 2
    assert steps_run(settings) == ["search", "train"]
    assert "step train failed with exit code 2 (bad input)" in capsys.readouterr().err

    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings, codes={"export": 7})) == 1
    assert steps_run(settings)[2:] == ["train", "export"]  # search was finished; train had not
    assert "step export failed with exit code 7" in capsys.readouterr().err
    assert not (settings.run_dir / "summary.json").exists()


@pytest.mark.parametrize("change, message", [
    ({"target_latency_ms": 0.0}, "--target_latency_ms 0: must be a positive"),
    ({"search_input_size": (60, 80)}, "--search_input_size 60x80: height and width must be multiples of 8"),
    ({"input_size": (64, 81)}, "--input_size 64x81: height and width must be multiples of 8"),
    ({"space": Path("no/such/space.yaml")}, "--space: no/such/space.yaml: cannot read"),
    ({"data": "synthetic:many"}, "--data synthetic:many"),
    ({"data": "nope:x"}, "unknown kind 'nope'"),
    ({"data": "synthetic:2,size=32x32"}, "--data synthetic:2,size=32x32: no val images (it has: train)"),
    ({"batch_size": 64}, "--batch_size 64: synthetic:8 has only 6 training images"),
    ({"latency_backend": "table:missing.json"}, "no such file missing.json"),
    ({"latency_backend": "gpu"}, "expected local[:FILE], adb[:FILE] or table:FILE"),
    ({"serial": "R58M"}, "--serial needs --latency_backend adb"),
])
def test_bad_inputs_exit_2_before_any_step(tmp_path, settings, capsys, change, message):
    settings = pipeline_settings.PipelineSettings(**{**vars(settings), **change})
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 2
    assert message in capsys.readouterr().err
    assert not settings.run_dir.exists()


def test_a_run_folder_another_command_is_running_in_is_refused_and_left_alone(tmp_path, settings, capsys):
    with hold(settings.run_dir, "python -m mobileseg.search (by hand)"):
        assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 2
        assert [path.name for path in settings.run_dir.iterdir()] == [".lock"]
    assert capsys.readouterr().err == (
        f"mobileseg.pipeline: error: {settings.run_dir}: another command is running in this folder (pid "
        f"{os.getpid()}: python -m mobileseg.search (by hand)); wait for it to finish or stop it, or use another "
        "folder\n")


def test_a_run_folder_of_another_data_set_or_space_is_refused(tmp_path, settings, capsys):
    assert pipeline.run_pipeline(settings, fake_commands(tmp_path, settings)) == 0
    other_data = pipeline_settings.PipelineSettings(**{**vars(settings), "data": "synthetic:9"})
    assert pipeline.run_pipeline(other_data, fake_commands(tmp_path, settings)) == 2
    assert "holds a run on synthetic:8; use a new --run_dir" in capsys.readouterr().err
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.read_text().replace("width: 8,", "width: 12,"))
    other_space = pipeline_settings.PipelineSettings(**{**vars(settings), "space": space})
    assert pipeline.run_pipeline(other_space, fake_commands(tmp_path, settings)) == 2
    assert "holds a run of another space" in capsys.readouterr().err
    config = settings.run_dir / "config.yaml"
    config.write_text(config.read_text() + "search: {input_size: [64, 80], search_scale: 0.5}\n")
    other_size = pipeline_settings.PipelineSettings(**{**vars(settings), "search_input_size": (32, 40)})
    assert pipeline.run_pipeline(other_size, fake_commands(tmp_path, settings)) == 2
    assert "--search_input_size 32x40: " in capsys.readouterr().err
    same_size = pipeline_settings.PipelineSettings(**{**vars(settings), "search_input_size": (64, 80)})
    assert pipeline.run_pipeline(same_size, fake_commands(tmp_path, settings)) == 0
    assert steps_run(settings) == ["search", "train", "export", "bench"]


def test_the_step_commands_chain_the_run_folder_and_forward_the_budget(settings):
    search = pipeline_steps.search_command(settings)
    assert search[2] == "mobileseg.search" and "--input_size" not in search and "--population" not in search
    budget = pipeline_settings.PipelineSettings(**{**vars(settings), "search_input_size": (64, 80), "population": 4})
    search = pipeline_steps.search_command(budget)
    assert search[search.index("--input_size") + 1] == "64x80" and search[search.index("--population") + 1] == "4"

    with pytest.raises(pipeline_settings.PipelineError, match="its search section has no input_size"):
        pipeline_steps.train_command(settings)
    settings.run_dir.mkdir()
    (settings.run_dir / "config.yaml").write_text("search: {input_size: [64, 80], search_scale: 0.5}\n")
    train = pipeline_steps.train_command(settings)
    flags = dict(zip(train[3::2], train[4::2]))
    assert flags["--arch"] == str(settings.run_dir / "arch.yaml")
    assert (flags["--input_size"], flags["--model_size"], flags["--val_size"]) == ("64x80",) * 3
    assert flags["--scale_range"] == "0.25,1" and flags["--epochs"] == "2"
    crops = pipeline_settings.PipelineSettings(**{**vars(settings), "input_size": (48, 48)})
    assert pipeline_steps.train_command(crops)[pipeline_steps.train_command(crops).index("--input_size") + 1] == "48x48"
    assert "--init" not in train  # no supernet in the folder
    (settings.run_dir / "supernet").mkdir()
    (settings.run_dir / "supernet" / "checkpoint.npz").write_bytes(b"")
    assert pipeline_steps.train_command(settings)[-2:] == ["--init", f"supernet:{settings.run_dir}"]
    (settings.run_dir / "config.yaml").write_text("search: {input_size: [64, 80], search_scale: 0.5}\n"
                                                  "train: {init: null}\n")
    assert "--init" not in pipeline_steps.train_command(settings)  # a training started without it resumes without it

    export = pipeline_steps.export_command(settings)
    assert "--int8" in export and export[export.index("--qat_epochs") + 1] == "3"
    phone = pipeline_settings.PipelineSettings(**{**vars(settings), "latency_backend": "adb", "serial": "R58M"})
    bench = pipeline_steps.bench_command(phone)
    assert bench[bench.index("--adb"):bench.index("--adb") + 3] == ["--adb", "--serial", "R58M"]
    assert bench[-1] == str(settings.run_dir / "bench" / "adb.json")


def run_cli(*args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "mobileseg.pipeline", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_usage_errors_exit_2(tmp_path):
    result = run_cli("--space", str(SPACE), "--data", "synthetic:8")
    assert result.returncode == 2
    assert "--run_dir, --target_latency_ms required" in result.stderr
    result = run_cli("--space", str(SPACE), "--data", "synthetic:8", "--run_dir", str(tmp_path / "r"),
                     "--target_latency_ms", "5", "--input_size", "64")
    assert result.returncode == 2
    assert "--input_size: input size '64' is not HEIGHTxWIDTH" in result.stderr
    result = run_cli("--space", str(SPACE), "--data", "synthetic:8", "--run_dir", str(tmp_path / "r"),
                     "--target_latency_ms", "5", "--train_epochs", "0")
    assert result.returncode == 2
    assert "--train_epochs" in result.stderr and not (tmp_path / "r").exists()


TINY_SPACE = """
name: tiny
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: conv, width: {choice: [8, 16]}, stride: 2}
      - {op: conv, width: 16, stride: 2}
      - choice: [{op: conv, width: 16, kernel: {choice: [1, 3]}}, {op: skip}]
head: {op: light, inputs: [{branch: main}], width: 16}
"""


@pytest.mark.slow
def test_the_real_steps_from_a_space_to_a_benchmarked_int8_model(tmp_path, capfd):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    settings = pipeline_settings.PipelineSettings(
        space=space, data="synthetic:8,size=32x32", run_dir=tmp_path / "run", target_latency_ms=1.0,
        search_input_size=(32, 32), supernet_epochs=1, population=4, generations=2, references="none",
        train_epochs=1, batch_size=2, qat_epochs=1)
    assert pipeline.run_pipeline(settings) == 0
    out = capfd.readouterr().out
    summary = json.loads((settings.run_dir / "summary.json").read_text())
    for name in ("Pareto plot", "architecture", "float model", "int8 TFLite", "export report", "benchmark"):
        assert Path(summary["files"][name]).is_file(), name
    assert summary["arch_name"].startswith("tiny_trial") and summary["split"] == "test"
    assert 0 <= summary["miou_float"] <= 1 and 0 <= summary["miou_int8"] <= 1
    assert summary["latency_ms"] > 0 and summary["size_mb"] > 0 and summary["search_latency_ms"] > 0
    assert summary["composition"].startswith("main: conv") and f"composition                  {summary['composition']}" in out
    chosen = json.loads((settings.run_dir / "pareto.json").read_text())["chosen"]
    assert chosen["measured_ms"] == summary["latency_ms"] and chosen["latency_error_pct"] is not None
    front = json.loads((settings.run_dir / "pareto.json").read_text())["front"]
    assert all(row["params"] > 0 and row["macs"] > 0 and row["composition"] for row in front)
    assert f"int8 TFLite                  {settings.run_dir / 'export' / 'model_int8.tflite'}" in out
    report = json.loads((settings.run_dir / "export" / "report.json").read_text())
    assert report["qat"]["epochs"] == 1 and report["files"][0]["method"] == "qat"
    page = settings.run_dir / "report.html"  # the run report, with every part of the run
    assert f"== report: {sys.executable} -m mobileseg.report --run_dir {settings.run_dir}" in out
    text = page.read_text()
    assert re.findall(r'<section id="(\w+)">', text) == [
        "overview", "pareto", "network", "accuracy", "samples", "latency", "export"]
    assert "Not in this run" not in text and text.count("<svg") == 1
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)  # Pareto, 2 confusion matrices, samples
    assert len(images) == 4 and all(Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100 for data in images)
    init = json.loads((settings.run_dir / "init_report.json").read_text())  # trained from the supernet's weights
    assert init["source"] == f"supernet:{settings.run_dir}" and init["matched"]
    assert init["missing"] == [] and init["shape_mismatch"] == {}

    written = page.stat().st_mtime_ns
    assert pipeline.run_pipeline(settings) == 0  # everything is done: nothing runs again
    assert capfd.readouterr().out.count("done already") == 4 and page.stat().st_mtime_ns == written
