"""How benchmarks/mask_head_camvid.py exports the heads it compares, and what it refuses."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from mask_head_camvid import exports  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mask_head_camvid.py"


def test_every_factor_and_the_logits_file_are_exported_from_the_run_s_own_qat_model(tmp_path):
    commands = exports(tmp_path, [1, 4], "synthetic:8")
    assert [folder for _, folder, _ in commands] == [tmp_path / "mask_head" / "up1", tmp_path / "mask_head" / "up4",
                                                     tmp_path / "mask_head" / "logits"]
    assert [factor for _, _, factor in commands] == [1, 4, None]
    for command, folder, _ in commands:
        assert command[command.index("--qat_epochs") + 1] == "0"  # reuse model_qat.keras: the same int8 weights
        assert command[command.index("--out_dir") + 1] == str(folder)
        assert {"--int8", "--fp32"} <= set(command)
    assert commands[1][0][-5:-2] == ["mask", "--mask_upsample", "4"]
    assert "--mask_upsample" not in commands[2][0] and commands[2][0][-3] == "logits"


def test_a_run_without_a_quantization_aware_model_is_refused_naming_it(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--run", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert f"{tmp_path}: no model_qat.keras" in done.stderr and "Traceback" not in done.stderr
