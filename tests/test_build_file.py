"""BUILD is kept true: Bazel cannot fetch rules_python here, so this test reads it instead.

BUILD is Starlark, which for these rules parses as Python; every target's ``srcs`` must
exist, every module must belong to a target, every test file must have a ``py_test``,
every command-line module a ``py_binary``, and every ``deps`` label must be defined.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def targets():
    tree = ast.parse((ROOT / "BUILD").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("py_"):
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords
                      if k.arg in ("name", "srcs", "deps", "main")}
            found.append((node.func.id, kwargs))
    return found


def python_files(folder):
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def is_cli(path):
    text = (ROOT / path).read_text()
    return path.endswith("__main__.py") or 'if __name__ == "__main__"' in text


def test_build_loads_rules_python():
    assert 'load("@rules_python//python:defs.bzl"' in (ROOT / "BUILD").read_text()


def test_every_src_exists_and_every_dep_is_defined():
    names = {kwargs["name"] for _, kwargs in targets()}
    for rule, kwargs in targets():
        for src in kwargs.get("srcs", []):
            assert (ROOT / src).is_file(), f"{rule} {kwargs['name']} names a missing file {src}"
        for dep in kwargs.get("deps", []):
            if dep.startswith(":"):
                assert dep[1:] in names, f"{kwargs['name']} depends on undefined target {dep}"


def test_every_module_has_a_target():
    covered = {src for _, kwargs in targets() for src in kwargs.get("srcs", [])}
    missing = [path for path in python_files("mobileseg") + python_files("tests") if path not in covered]
    assert not missing, f"no BUILD target for {missing}"


def test_every_test_file_has_a_py_test_and_every_cli_a_py_binary():
    tests = {src for rule, kwargs in targets() if rule == "py_test" for src in kwargs["srcs"]}
    binaries = {kwargs["main"] for rule, kwargs in targets() if rule == "py_binary"}
    missing_tests = [p for p in python_files("tests") if Path(p).name.startswith("test_") and p not in tests]
    missing_binaries = [p for p in python_files("mobileseg") if is_cli(p) and p not in binaries]
    assert not missing_tests, f"no py_test for {missing_tests}"
    assert not missing_binaries, f"no py_binary for {missing_binaries}"
