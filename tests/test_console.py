"""A clean console: native chatter goes to the run folder's log, Python's output stays on the console."""

import os
import subprocess
import sys
from pathlib import Path

from mobileseg import console

REPO = Path(__file__).resolve().parents[1]
SPACE = """
name: small
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: conv, width: {choice: [8, 12]}, stride: 2}
head: {op: light, inputs: [{branch: main}], width: 8}
"""
CHATTER = ("fully_quantize", "I0000", "W0000", "oneDNN", "cuda", "absl::InitializeLog", "To enable the following",
           "Created TensorFlow Lite XNNPACK delegate")


def test_native_output_goes_to_the_log_and_python_output_to_the_console(tmp_path, capfd):
    log = tmp_path / "logs" / "native.log"
    with console.native_output_to(log):
        os.write(1, b"native out\n")
        os.write(2, b"native err\n")
        print("python out", flush=True)
    os.write(2, b"after\n")
    assert log.read_text() == "native out\nnative err\n"
    captured = capfd.readouterr()
    assert "native" not in captured.out + captured.err and "after" in captured.err


def test_a_run_folder_keeps_the_native_log_unless_one_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv(console.NATIVE_LOG_ENV, raising=False)
    assert console.native_log_path() == os.devnull
    console.keep_native_log_in(tmp_path / "run")
    assert console.native_log_path() == str((tmp_path / "run" / "native.log").resolve())
    console.keep_native_log_in(tmp_path / "other")  # the first (e.g. the pipeline's) wins in its subprocesses
    assert console.native_log_path().startswith(str((tmp_path / "run").resolve()))


def test_a_command_prints_no_native_chatter_and_logs_it(tmp_path):
    (tmp_path / "small.yaml").write_text(SPACE)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env[console.NATIVE_LOG_ENV] = str(tmp_path / "native.log")
    result = subprocess.run([sys.executable, "-m", "mobileseg.latency", "build", "--space", str(tmp_path / "small.yaml"),
                             "--input_size", "32x32", "--out", str(tmp_path / "t.json"), "--max_seconds", "0.2",
                             "--min_runs", "10", "--noprogress", "--latency_cache", "off"],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "measured 4 blocks" in result.stdout
    console_text = result.stdout + result.stderr
    assert not [word for word in CHATTER if word in console_text], console_text
    assert "fully_quantize" in (tmp_path / "native.log").read_text()



def test_a_log_handler_made_within_the_block_writes_to_the_console_after_it(tmp_path):
    """TensorFlow's logger gets its handler during its import inside the block; it must outlive the block."""
    script = (f"import logging, sys\nfrom mobileseg import console\n"
              f"with console.native_output_to({str(tmp_path / 'native.log')!r}):\n"
              f"    logging.getLogger('x').addHandler(logging.StreamHandler())\n"
              f"logging.getLogger('x').warning('after the block')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after the block\n"
