"""The simulator's layers: its model, faults and server events are socket-free, and its modules form no cycle.

(The package-wide cycle check lives in the architecture test; this one says what the simulator's split means.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import ava_tray.simulator

SIMULATOR = Path(ava_tray.simulator.__file__).parent
SOCKET_FREE = ("model", "faults", "server_events", "voice")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports anywhere in the file (`from a import b` counts `a` and `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_model_faults_and_server_events_touch_no_socket_or_task() -> None:
    for name in SOCKET_FREE:
        roots = {module.split(".")[0] for module in imported_modules(SIMULATOR / f"{name}.py")}
        assert not roots & {"asyncio", "socket", "websockets"}, f"simulator/{name}.py imports {sorted(roots)}"
        assert not {f"ava_tray.simulator.{layer}" for layer in ("connection", "server")} & imported_modules(
            SIMULATOR / f"{name}.py"), f"simulator/{name}.py imports the socket layer"


def test_the_simulator_modules_import_each_other_one_way() -> None:
    modules = {path.stem: path for path in SIMULATOR.glob("*.py") if path.stem not in ("__init__", "__main__")}
    graph = {name: {other for other in modules if f"ava_tray.simulator.{other}" in imported_modules(path)} - {name}
             for name, path in modules.items()}
    order: list[str] = []
    while graph:
        leaves = sorted(name for name, deps in graph.items() if not deps - set(order))
        assert leaves, f"an import cycle among {sorted(graph)}"
        order += leaves
        for name in leaves:
            del graph[name]
    assert order.index("model") < order.index("connection") < order.index("server")
