"""The shape of the package: the core imports no Qt, and no module imports itself back through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from blocked_imports import blocking

PACKAGE = Path(__file__).resolve().parents[2] / "ava_tray"

CORE = ["ava_tray.engine", "ava_tray.bootstrap", "ava_tray.supervisor", "ava_tray.session", "ava_tray.settings",
        "ava_tray.status", "ava_tray.history", "ava_tray.conversation", "ava_tray.realtime.events",
        "ava_tray.realtime.ending", "ava_tray.realtime.connection", "ava_tray.tools.wiring",
        "ava_tray.tools.builtin", "ava_tray.tools.registry", "ava_tray.tools.reminders", "ava_tray.tools.hooks",
        "ava_tray.tools.schema", "ava_tray.tools.calculator", "ava_tray.memory", "ava_tray.console",
        "ava_tray.audio.voice_gate", "ava_tray.audio.speech_detector", "ava_tray.conversation_log",
        "ava_tray.day_timeline", "ava_tray.hotkey", "ava_tray.hotkey.keys", "ava_tray.hotkey.x11",
        "ava_tray.hotkey.portal"]
"""The Qt-free core, and the console front end that runs on it."""

BLOCK_QT = blocking(("PySide6", "shiboken6"), "the core must not import Qt")


def test_the_core_imports_with_pyside6_blocked() -> None:
    code = BLOCK_QT + "".join(f"import {name}\n" for name in CORE) + (
        "loaded = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "assert not loaded, loaded\n"
        "from ava_tray.engine import AvaEngine\n"
        "from ava_tray.settings import Settings\n"
        "from ava_tray.history import ReconnectHistory\n"
        "engine = AvaEngine(Settings(), None, history=ReconnectHistory(None))\n"
        "assert engine.snapshot.muted is False\n"
        "print('core ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "core ok" in result.stdout


def test_the_check_itself_notices_qt() -> None:
    """A control: the same block makes a Qt module fail to import, so the test above can fail."""
    code = BLOCK_QT + "import ava_tray.settings_store\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=PACKAGE.parent)
    assert result.returncode != 0 and "PySide6 is blocked" in result.stderr


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every ava_tray module `path` imports, anywhere in the file (type-checking and function-local imports
    included: a cycle hidden in a function is still a cycle)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph`, as the list of modules around it; None when there is none."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def package_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) for f in files}


def test_no_import_cycle_in_the_package() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
