"""The MCP self-test: AVA's own one-tool MCP server, started over stdio through the SDK and called once.

`serve()` is the server (`python -m ava_tray.tools.mcp.probe`; a frozen AVA would run it as
`ava-tray --mcp-probe-server`, see `probe_command`); `check()` starts it as mcp.json would and says in a
sentence whether MCP works in this install.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import sys
import time

from ava_tray import paths
from ava_tray.tools.mcp.config import ServerConfig
from ava_tray.tools.mcp.status import ServerState

logger = logging.getLogger(__name__)

PROBE_FLAG = "--mcp-probe-server"
"""The command-line flag a frozen AVA answers by serving the probe server (to be dispatched by __main__)."""
CHECK_TIMEOUT = 30.0


class McpUnavailable(Exception):
    """MCP does not work in this install; the message says why."""


def serve() -> None:
    """Serve one tool, `ping`, over stdio (blocks until stdin closes)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("ava-probe")

    @server.tool()
    def ping() -> str:
        """Answer pong."""
        return "pong"

    server.run()


def probe_command(frozen: bool | None = None) -> list[str]:
    """How to start the probe server: the frozen executable with `PROBE_FLAG`, or this module."""
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if frozen:
        return [*paths.launch_command(frozen=True), PROBE_FLAG]
    return [sys.executable, "-m", "ava_tray.tools.mcp.probe"]


async def check(command: list[str] | None = None) -> str:
    """Start the probe server, call `ping`, stop it: a sentence saying MCP works, or `McpUnavailable`."""
    command = command or probe_command()
    began = time.perf_counter()
    try:
        from ava_tray.tools.mcp.connection import ServerConnection
    except ImportError as exc:
        raise McpUnavailable(f"the MCP SDK cannot be loaded ({exc})") from None
    connection = ServerConnection(ServerConfig("probe", command=command[0], args=tuple(command[1:])),
                                  lambda: None)
    connection.start()
    try:
        await asyncio.wait_for(connection.first_attempt_done.wait(), CHECK_TIMEOUT)
        if connection.state is not ServerState.READY:
            raise McpUnavailable(f"a stdio MCP server {connection.detail}")
        answer = await connection.call("ping", {}, CHECK_TIMEOUT)
    except TimeoutError:
        raise McpUnavailable(f"a stdio MCP server did not answer within {CHECK_TIMEOUT:g} s") from None
    finally:
        await connection.stop()
    if answer != {"result": "pong"}:
        raise McpUnavailable(f"the probe server answered {answer!r} instead of pong")
    version = importlib.metadata.version("mcp")
    return f"available (SDK {version}; a stdio server started and answered in {time.perf_counter() - began:.1f} s)"


if __name__ == "__main__":
    serve()
