"""How benchmarks/wide_depthwise_camvid.py exports the two versions it compares, and what it refuses."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from wide_depthwise_camvid import export_command  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "wide_depthwise_camvid.py"


def test_each_copy_is_exported_with_quantization_aware_training_into_its_own_folder(tmp_path):
    command = export_command(tmp_path / "now", "synthetic:8", 3)
    assert command[command.index("--run_dir") + 1] == str(tmp_path / "now")
    assert command[command.index("--out_dir") + 1] == str(tmp_path / "now" / "export")
    assert command[command.index("--qat_epochs") + 1] == "3" and {"--int8", "--fp32", "--noevaluate"} <= set(command)


def test_a_run_without_a_model_or_a_checkout_that_is_not_mobileseg_is_refused_naming_it(tmp_path):
    def refused(*args):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        return done.stderr

    assert f"{tmp_path}: no model.keras, config.yaml" in refused("--run", str(tmp_path), "--before", str(tmp_path))
    (tmp_path / "model.keras").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("")
    assert f"{tmp_path}: not a mobileseg checkout" in refused("--run", str(tmp_path), "--before", str(tmp_path))
