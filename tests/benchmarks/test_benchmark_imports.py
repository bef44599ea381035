"""Every name a benchmark imports from mobileseg exists: a move in the package must not break a benchmark
that the suite never runs (issue 17 moved `environment` out of the export command)."""

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


def mobileseg_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from mobileseg... import name`` in the file, nested ones included."""
    return [(node.module, alias.name) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mobileseg"
            for alias in node.names]


def test_the_scan_finds_nested_imports(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text("def f():\n    from mobileseg.run.sizes import check_size, nothing_here\n")
    assert mobileseg_imports(script) == [("mobileseg.run.sizes", "check_size"), ("mobileseg.run.sizes", "nothing_here")]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_mobileseg_name_a_benchmark_imports_exists(path):
    missing = []
    for module, name in mobileseg_imports(path):
        imported = importlib.import_module(module)
        if not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports names that do not exist: {missing}"
