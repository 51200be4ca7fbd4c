"""The package's import graph, read from the source (every import, at module level or in a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import nightshift

PACKAGE = Path(nightshift.__file__).parent


def module_name(path: Path) -> str:
    parts = ("nightshift", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_runtime_package_never_imports_the_repositorys_tooling():
    tooling = ("nightshift_dev", "emulator")
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py" and path.parent == PACKAGE:
            continue  # adds the tooling's subcommands when that distribution is installed, guarded
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n.split(".")[0] in tooling for n in names):
                offenders.setdefault(module_name(path), []).append(names)
    assert offenders == {}


#: The core: the pipeline's steps, the workloads, the ledger and what they share. Airflow and the
#: vendor SDK belong to the layers around it (operators, sensors, triggers, hooks; the backends).
CORE_PACKAGES = ("nightshift.batch", "nightshift.workloads", "nightshift.ledger")
CORE_MODULES = ("nightshift.backends", "nightshift.costs", "nightshift.queue", "nightshift.destination",
                "nightshift.model_table")
FORBIDDEN = ("airflow", "anthropic")


def core_closure(graph: dict[str, set[str]]) -> set[str]:
    """The core modules and every nightshift module they import, transitively."""
    todo = [m for m in graph if m in CORE_MODULES or m in CORE_PACKAGES or m.startswith(
        tuple(p + "." for p in CORE_PACKAGES))]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph[module]
    return seen


def forbidden_imports(module: str) -> list[str]:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def test_the_core_imports_neither_airflow_nor_a_vendor_sdk():
    closure = core_closure(import_graph())
    assert "nightshift.batch.submit" in closure and "nightshift.workloads.registry" in closure  # it looks
    offenders = {m: found for m in sorted(closure) if (found := forbidden_imports(m))}
    assert offenders == {}


def test_the_core_check_sees_a_forbidden_import_behind_another_module():
    graph = {"nightshift.batch.submit": {"nightshift.helper"}, "nightshift.helper": {"nightshift.operators"},
             "nightshift.operators": set(), "nightshift.ui.app": set()}
    assert core_closure(graph) == {"nightshift.batch.submit", "nightshift.helper", "nightshift.operators"}
    assert forbidden_imports("nightshift.operators")  # it imports airflow.sdk
