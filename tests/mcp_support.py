"""Helpers for the MCP tests: mcp.json entries for tests/mcp_server.py, its HTTP mode, process checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from waits import wait_until

SERVER = Path(__file__).resolve().parent / "mcp_server.py"


def stdio_entry(**extra: Any) -> dict[str, Any]:
    """An mcp.json entry starting the test server over stdio."""
    return {"command": sys.executable, "args": [str(SERVER)], **extra}


def write_config(path: Path, servers: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}, indent=2), encoding="utf-8")


def output(text: str) -> dict[str, Any]:
    decoded = json.loads(text)
    assert isinstance(decoded, dict), text
    return decoded


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def http_server(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """The test server on streamable HTTP at 127.0.0.1:`port`/mcp, until the block ends."""
    process = await asyncio.create_subprocess_exec(sys.executable, str(SERVER), "--http", str(port),
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_until(lambda: accepting(port) or process.returncode is not None, 30,
                         f"the HTTP server on port {port}", poll=0.05)
        assert process.returncode is None, "the HTTP test server exited"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
