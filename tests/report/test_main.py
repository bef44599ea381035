"""python -m mobileseg.report: writes DIR/report.html, refuses a folder that is not a run, and the page
loads in a real browser (headless Chromium) without errors, every section and image shown."""

import re
import subprocess
import sys

import numpy as np
from absl import flags
from PIL import Image

from mobileseg.report import __main__ as main
from tests.report import browser

SECTIONS = ["overview", "pareto", "network", "accuracy", "samples", "latency", "export", "int8-profile"]


def report(run_dir, *args):
    return subprocess.run([sys.executable, "-m", "mobileseg.report", "--run_dir", str(run_dir), "--noprogress",
                           *args], capture_output=True, text=True, timeout=600, check=False)


def test_a_trained_run_gets_a_self_contained_report_that_a_browser_shows_whole(trained_run, tmp_path):
    done = report(trained_run, "--samples", "2")
    assert done.returncode == 0, done.stderr
    page = trained_run / "report.html"
    assert done.stdout.strip() == str(page)
    text = page.read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and all(link.startswith(("data:image/png;base64,", "#")) for link in links), links

    seen = browser.load(page, tmp_path)
    assert [section["id"] for section in seen["sections"]] == SECTIONS
    missing = {section["id"] for section in seen["sections"] if section["missing"]}
    assert missing == {"pareto", "export", "int8-profile"}  # no search, no export report in this run: said
    assert next(s for s in seen["sections"] if s["id"] == "network")["svgs"] == 1
    # the two confusion matrices and the sample figure, each decoded by the browser
    assert [image["alt"] for image in seen["images"]] == [
        "confusion matrix, float", "confusion matrix, int8", "sample predictions"]
    assert all(image["complete"] and image["width"] > 100 and image["height"] > 100 for image in seen["images"])
    assert seen["errors"] == [] and seen["resources"] == []

    shot = np.asarray(Image.open(browser.screenshot(page, tmp_path / "report.png", tmp_path)).convert("L"))
    assert shot.std() > 10  # something is drawn, not a blank page


def test_a_folder_that_is_not_a_run_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    done = report(tmp_path)
    assert done.returncode == 2 and "not a run folder" in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert not (tmp_path / "report.html").exists()


def test_a_missing_run_dir_or_flag_exits_2(tmp_path, capsys):
    for args, problem in ((["--run_dir", str(tmp_path / "none")], "no such folder"), ([], "--run_dir required")):
        flag_values = flags.FlagValues()
        main.define_flags(flag_values)
        assert main.run(flag_values, flag_values(["report", *args])) == 2
        assert problem in capsys.readouterr().err
