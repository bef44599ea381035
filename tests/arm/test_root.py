"""mobileseg.arm.root: where the root is, what counts as finished, the emulated command line."""

import os
import subprocess
from pathlib import Path

import pytest

from mobileseg.arm import root
from tests.arm.models import arm_root


def test_root_path_prefers_the_argument_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(root.ROOT_ENV, str(tmp_path / "from_env"))
    assert root.root_path() == tmp_path / "from_env"
    assert root.root_path(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(root.ROOT_ENV)
    assert str(root.root_path()).endswith(".cache/mobileseg/arm64-root")


def test_a_missing_or_unfinished_root_is_refused_with_the_command_that_makes_it(tmp_path):
    with pytest.raises(root.ArmRootError, match=r"no arm64 root at .*missing: make it with `make arm_root`"):
        root.find_root(tmp_path / "missing")
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / root.PYTHON).write_text("")
    with pytest.raises(root.ArmRootError, match=r"an unfinished arm64 root \(no \.mobileseg-arm-root"):
        root.find_root(tmp_path)


def test_an_unknown_cpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown emulated CPU 'pentium'"):
        root.ArmRoot(tmp_path, "qemu-aarch64-static").python_command(["-c", "pass"], "pentium")


def test_the_emulated_python_is_aarch64_and_imports_this_checkout():
    found = arm_root()
    done = subprocess.run(found.python_command(["-c", "import platform, mobileseg.arm.root as r; "
                                                "print(platform.machine(), r.__file__)"]),
                          env=found.environment(), capture_output=True, text=True, timeout=120, check=True)
    machine, module = done.stdout.split()
    assert machine == "aarch64"
    assert module == root.__file__
    assert found.qemu_version().startswith("qemu-aarch64 version")


def test_the_emulated_path_holds_this_package_and_nothing_beside_it(tmp_path):
    # an installed mobileseg sits in site-packages beside this machine's x86-64 numpy: the path entry
    # must expose the package alone, so the root's aarch64 wheels are the ones imported
    found = root.ArmRoot(tmp_path, "qemu-aarch64-static")
    entry = found.package_entry()
    assert entry.startswith(str(root.PACKAGES) + "/")
    folder = tmp_path / entry.lstrip("/")
    assert [p.name for p in folder.iterdir()] == ["mobileseg"]
    assert (folder / "mobileseg").resolve() == Path(root.__file__).resolve().parents[1]
    assert found.package_entry() == entry  # idempotent: the link is kept
    assert found.environment()["PYTHONPATH"].split(os.pathsep) == [entry, root.SITE_PACKAGES]
