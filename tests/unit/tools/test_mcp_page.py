"""The MCP servers page renders what the host reports and opens mcp.json (offscreen Qt)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from mcp_support import write_config
from pytestqt.qtbot import QtBot

from ava_tray.tools import ToolRegistry
from ava_tray.tools.mcp.host import McpHost
from ava_tray.tools.mcp.status import McpStatus, ServerState, ServerStatus, ToolStatus
from ava_tray.ui.mcp_page import EMPTY, TEMPLATE, McpPage


def status(path: Path) -> McpStatus:
    weather = ServerStatus("weather", "http", ServerState.READY, "3 tools", tools=(
        ToolStatus("forecast", "weather__forecast", "The forecast.", asks_first=False),
        ToolStatus("set_alert", "weather__set_alert", "Sets an alert.", asks_first=True),
        ToolStatus("history", None, "Past weather.", asks_first=True)), line=3)
    files = ServerStatus("files", "stdio", ServerState.FAILED, "failed to start: the command 'npx' was not found",
                         retry_in=7.6, line=9)
    return McpStatus(path, (weather, files), config_problem=None, left_out=("weather__history",))


def rows(page: McpPage) -> list[list[str]]:
    found = []
    for i in range(page.tree.topLevelItemCount()):
        item = page.tree.topLevelItem(i)
        assert item is not None
        found.append([item.text(column) for column in range(3)])
        for j in range(item.childCount()):
            child = item.child(j)
            assert child is not None
            found.append(["  " + child.text(0), child.text(1), child.text(2)])
    return found


def test_servers_their_state_and_their_tools(qtbot: QtBot, tmp_path: Path) -> None:
    page = McpPage(tmp_path / "mcp.json")
    qtbot.addWidget(page)
    assert page.summary.text() == EMPTY and page.tree.topLevelItemCount() == 0
    page.show_status(status(tmp_path / "mcp.json"))
    assert rows(page) == [
        ["weather", "ready · 3 tools", "remote (HTTP)"],
        ["  forecast", "runs without asking", "weather__forecast"],
        ["  set_alert", "asks first", "weather__set_alert"],
        ["  history", "not declared (too many tools)", ""],
        ["files", "failed to start: the command 'npx' was not found; trying again in 8 s", "local (stdio)"],
    ]
    assert page.summary.text() == "MCP: 1 of 2 servers ready, 2 tools (1 more left out by the cap)"
    assert page.problem.isHidden()

    page.tree.topLevelItem(0).setExpanded(True)  # type: ignore[union-attr]
    page.show_status(status(tmp_path / "mcp.json"))
    assert page.tree.topLevelItem(0).isExpanded(), "a new status keeps what the user expanded"  # type: ignore[union-attr]


def test_open_creates_the_file_when_there_is_none(qtbot: QtBot, tmp_path: Path) -> None:
    opened: list[Path] = []
    path = tmp_path / "config" / "mcp.json"
    page = McpPage(path, open_file=lambda target: opened.append(target) or True)
    qtbot.addWidget(page)
    page.open_button.click()
    assert opened == [path] and path.read_text() == TEMPLATE
    path.write_text('{"mcpServers": {"mine": {"command": "x"}}}')
    page.open_button.click()
    assert "mine" in path.read_text(), "an existing file is opened as it is"

    refusing = McpPage(path, open_file=lambda target: False)
    qtbot.addWidget(refusing)
    assert not refusing.open_config()
    assert "open it in a text editor" in refusing.problem.text()


async def test_fed_by_a_host_it_shows_the_file_s_problem_and_bad_entries(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    write_config(path, {"nothing": {"args": []}, "off": {"command": "x", "disabled": True}})
    host = McpHost(ToolRegistry(), path)
    page = McpPage(path, refresh=host.status)
    qtbot.addWidget(page)
    host.subscribe(page.show_status)
    async with host.running():
        page.show()
        assert [row[:2] for row in rows(page)] == [
            ["nothing", f"{path} line 3: server 'nothing' needs either a \"command\" (a local server) or a \"url\" "
                        "(a remote one)"],
            ["off", "disabled in mcp.json"]]
        path.write_text('{"mcpServers": {')
        await host.reload()
        assert page.problem.isVisible() and "line 1, column 17" in page.problem.text()
