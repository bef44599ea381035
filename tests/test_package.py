"""``pip install .`` makes a real package: the wheel, installed into a fresh venv, runs its commands with
its shipped files from outside the checkout.

The wheel is built from a copy of what pyproject.toml packages (so the checkout gets no build/ or
egg-info), without build isolation (the project's setuptools, nothing downloaded). The fresh venv
sees the project venv's site-packages through a ``.pth`` line, so TensorFlow and the other pinned
dependencies are not reinstalled, and pip resolves the wheel's dependencies against them with
``--no-index`` (a dependency pyproject names that is not installed fails the install). That venv does
not run the ``.pth`` files of the project venv, so the checkout's editable install is not seen.
"""

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGED = ("pyproject.toml", "README.md", "requirements.txt")


def run(command, cwd, timeout=180):
    """Run ``command`` with no PYTHONPATH (only what is installed counts); return its stdout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the built wheel installed: ``(venv, working folder outside the checkout)``."""
    for module in ("setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed in {sys.prefix}: the wheel cannot be built without it")
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"
    source.mkdir()
    for name in PACKAGED:
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "mobileseg", source / "mobileseg", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir", "-q",
         "-w", str(tmp / "wheels"), str(source)], cwd=tmp)
    wheel, = (tmp / "wheels").glob("mobileseg-*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).strip())
    (purelib / "project_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([*pip, "--python", str(python), "install", "--no-index", "--no-build-isolation", "--no-cache-dir", "-q",
         str(wheel)], cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    venv, elsewhere = installed
    out = run([str(venv / "bin" / "python"), "-c",
               "import mobileseg, mobileseg.shipped_files as s; print(mobileseg.__file__); print(s.SHIPPED)"],
              cwd=elsewhere)
    package, shipped = (Path(line) for line in out.splitlines())
    assert package.is_relative_to(venv) and shipped.is_relative_to(venv)
    assert (shipped / "search_space" / "references" / "seaformer_tiny.yaml").is_file()
    assert (shipped / "android_bench" / "run_benchmark.sh").is_file()


def test_the_console_script_lists_the_commands_and_the_shipped_files(installed):
    venv, elsewhere = installed
    out = run([str(venv / "bin" / "mobileseg"), "--help"], cwd=elsewhere)
    assert "  search " in out and "  summary " in out and "  pipeline " in out
    assert "default, demo" in out and "seaformer_tiny" in out and "cpu-int8" in out


def test_summary_runs_on_a_shipped_reference_from_outside_the_checkout(installed):
    venv, elsewhere = installed
    assert not (elsewhere / "search_space").exists()
    flags = ["--num_classes", "12", "--input_size", "128x128", "--json"]
    script = [str(venv / "bin" / "mobileseg"), "summary", "search_space/references/seaformer_tiny.yaml", *flags]
    module = [str(venv / "bin" / "python"), "-m", "mobileseg.summary", "seaformer_tiny", *flags]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    processes = [subprocess.Popen(command, cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for command in (script, module)]  # both at once: two TF imports
    summaries = []
    for command, process in zip((script, module), processes):
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, f"{command} exited {process.returncode}: {err[-2000:]}"
        summaries.append(json.loads(out))
    by_script, by_module = summaries
    assert by_script == by_module
    assert by_script["name"] == "seaformer_tiny" and by_script["input_size"] == [128, 128]
    assert by_script["params"] == sum(block["params"] for block in by_script["blocks"]) > 1_000_000
    assert by_script["blocks"][-1]["output_shape"][-1] == 12
