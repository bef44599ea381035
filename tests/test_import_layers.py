"""The package's imports go one way: no module of ``mobileseg`` imports, directly or through others,
a module that imports it back, and no library module imports a command (issue 17). Imports inside
functions count (they run too); imports under ``if TYPE_CHECKING:`` do not (they never run)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mobileseg"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules of the package it imports at run time}``."""
    modules = {module_name(path, package): path for path in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def commands(package: Path = PACKAGE) -> set[str]:
    """The command modules: every ``__main__.py`` and every module with ``if __name__ == "__main__"``."""
    return {module_name(path, package) for path in package.rglob("*.py")
            if path.name == "__main__.py" or 'if __name__ == "__main__"' in path.read_text()}


def library_imports_of_commands(graph: dict[str, set[str]], command_set: set[str]) -> dict[str, set[str]]:
    """``{library module: the commands it imports}`` (a command may import another; a library module may not)."""
    return {module: targets & command_set for module, targets in graph.items()
            if module not in command_set and targets & command_set}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    package = tmp_path / "mobileseg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from mobileseg import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mobileseg import a\n")
    assert import_graph(package) == {"mobileseg": set(), "mobileseg.a": {"mobileseg.b"}, "mobileseg.b": set()}


def test_no_module_of_the_package_imports_itself_back():
    assert cycles(import_graph()) == []


def test_no_package_of_mobileseg_imports_itself_back():
    graph = import_graph()

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(package(module), set()).update(
            package(target) for target in targets if package(target) != package(module))
    assert cycles(packages) == []


def test_the_command_set_is_the_entry_points_and_a_library_import_of_one_is_found(tmp_path):
    found = commands()
    assert {"mobileseg.train", "mobileseg.pipeline", "mobileseg.search.__main__", "mobileseg.zoo"} <= found
    assert not found & {"mobileseg.pipeline_budget", "mobileseg.run.exit_codes", "mobileseg.search.stages"}
    package = tmp_path / "mobileseg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text('def main():\n    pass\n\nif __name__ == "__main__":\n    main()\n')
    (package / "helper.py").write_text("from mobileseg.tool import main\n")
    (package / "other.py").write_text("import mobileseg.tool\n")
    assert commands(package) == {"mobileseg.tool"}
    assert library_imports_of_commands(import_graph(package), commands(package)) == {
        "mobileseg.helper": {"mobileseg.tool"}, "mobileseg.other": {"mobileseg.tool"}}


def test_no_library_module_imports_a_command():
    assert library_imports_of_commands(import_graph(), commands()) == {}
