"""No import cycles in `ava_tray`, read from the source (every import counts, `TYPE_CHECKING` ones included).

Also the simulator's layers: its model, faults and server events import no socket, task or WebSocket code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ava_tray

PACKAGE = Path(ava_tray.__file__).parent

KNOWN_CYCLES: set[frozenset[str]] = {frozenset({"ava_tray.engine", "ava_tray.tools.wiring"})}
"""Cycles that exist today and are being removed (issue 11: tools get callables, not the engine); none may be
added. Drop an entry when its cycle is gone."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The `ava_tray` modules `path` imports anywhere in its body (`from a import b` is `a.b` when that is a
    module, else `a`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_no_new_import_cycle_in_ava_tray() -> None:
    new = [sorted(cycle) for cycle in cycles(import_graph()) if cycle not in KNOWN_CYCLES]
    assert new == [], f"import cycles: {new}"


def test_the_simulator_has_no_import_cycle() -> None:
    assert [cycle for cycle in cycles(import_graph()) if any(".simulator" in name for name in cycle)] == []


def test_the_simulator_model_and_faults_are_socket_free() -> None:
    for name in ("model", "faults", "server_events"):
        path = PACKAGE / "simulator" / f"{name}.py"
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"asyncio", "socket", "websockets"}, f"simulator/{name}.py imports {imported}"
