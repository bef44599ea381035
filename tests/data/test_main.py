"""`python -m mobileseg.data check`, run as a user runs it (a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.data.fake_layouts import make_camvid, write_mask

REPO = Path(__file__).resolve().parents[2]


def run_check(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mobileseg.data", "check", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip


def test_cli_reports_each_bad_file_and_exits_non_zero(tmp_path):
    root = make_camvid(tmp_path / "camvid")
    (root / "valannot" / "0001TP_000001.png").unlink()
    write_mask(root / "trainannot" / "0001TP_000002.png", values=[0, 40])
    result = run_check(f"--data=camvid:{root}")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"[train] {root}/trainannot/0001TP_000002.png: label values 40 outside classes 0..10 and void 11",
        f"[val] {root}/valannot/0001TP_000001.png: missing mask (partner of image {root}/val/0001TP_000001.png)",
    ]
    assert "2 problem(s) in 2 file(s)" in lines[2]


def test_cli_clean_exits_zero_and_bad_spec_exits_two(tmp_path):
    clean = run_check(f"--data=camvid:{make_camvid(tmp_path / 'camvid')}", "--splits=train,test")
    assert clean.returncode == 0 and "train 3 pairs, test 1 pairs; clean" in clean.stdout
    unknown = run_check("--data=foo:bar")
    assert unknown.returncode == 2 and "unknown kind 'foo'" in unknown.stderr
