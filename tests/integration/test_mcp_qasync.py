"""The tray runs asyncio on Qt's loop (qasync): MCP servers start, answer and stop there too."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from mcp_support import alive, output, stdio_entry, write_config
from PySide6.QtWidgets import QApplication

from ava_tray.tools import ToolRegistry
from ava_tray.tools.mcp.host import McpHost
from ava_tray.tools.mcp.status import ServerState


def test_a_stdio_server_on_the_qt_event_loop(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    write_config(config, {"local": stdio_entry(autoApprove=["pid", "echo"])})
    registry = ToolRegistry()
    host = McpHost(registry, config)

    async def main() -> int:
        async with host.running():
            assert host.status().servers[0].state is ServerState.READY, host.status().lines()
            assert output(await registry.call("local__echo", '{"text": "on Qt"}', "c1")) == {"result": "on Qt"}
            pid = int(output(await registry.call("local__pid", "{}", "c2"))["result"])
            assert alive(pid)
        return pid

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    try:
        pid = loop.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        loop.close()
    assert not alive(pid)
