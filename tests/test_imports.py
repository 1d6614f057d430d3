"""The package's import graph has no cycles (issue 16): every import between dlcli modules,
including those inside functions, read with `ast`. A cycle hides behind an import placed in a
function until the day the order of imports changes; this test finds it the day it is written."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dlcli"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported dlcli module: line of the first such import}. `from dlcli.x import y`
    counts as importing dlcli.x.y where y is a module, else dlcli.x."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..data import y
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target) if target.startswith("dlcli") else None
                if found and found != name:
                    graph[name].setdefault(found, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40, f"found only {len(graph)} modules under {PACKAGE}"
    found = cycles(graph)
    described = []
    for component in found:
        members = set(component)
        described.append("\n".join(f"  {name} imports {target} (line {line})" for name in component
                                   for target, line in sorted(graph[name].items()) if target in members))
    assert not found, "import cycles between dlcli modules:\n" + "\n\n".join(described)


def test_the_checker_finds_a_cycle_hidden_inside_a_function():
    graph = {"dlcli.a": {"dlcli.b": 3}, "dlcli.b": {"dlcli.c": 9}, "dlcli.c": {"dlcli.a": 40}, "dlcli.d": {}}
    assert cycles(graph) == [["dlcli.a", "dlcli.b", "dlcli.c"]]
    assert cycles({"dlcli.a": {"dlcli.b": 1}, "dlcli.b": {}}) == []
