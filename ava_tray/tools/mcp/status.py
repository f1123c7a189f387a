"""What the MCP host shows: each server's state, its tools and a line of words (no SDK, no Qt)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ServerState(enum.Enum):
    """Where one configured server stands."""

    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    """It ran and stopped (or stopped answering): it is started again after a back-off."""
    FAILED = "failed"
    """It did not start: tried again after a back-off (a misconfigured entry is not tried)."""
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ToolListing:
    """One tool as its server lists it."""

    name: str
    description: str | None
    title: str | None
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolStatus:
    """One of a server's tools as AVA offers it."""

    name: str
    """The server's name for it."""
    function: str | None
    """The name declared to the model; None when the cap on declared tools left it out."""
    description: str
    asks_first: bool
    """True unless the tool is in the server's `autoApprove` (Settings' allowed tools are not counted here)."""


@dataclass(frozen=True)
class ServerStatus:
    """One entry of mcp.json as it runs now."""

    name: str
    transport: str
    """"stdio" or "http"."""
    state: ServerState
    detail: str
    tools: tuple[ToolStatus, ...] = ()
    restarts: int = 0
    retry_in: float | None = None
    """Seconds until the next start attempt (RESTARTING, FAILED)."""
    line: int = 0
    """Where the entry starts in mcp.json."""
    misconfigured: bool = False
    """The entry itself is wrong (the detail says how): it is not tried until mcp.json changes."""

    def summary(self) -> str:
        """The server's state in a few words, e.g. `ready · 3 tools` or `failed to start: …; trying again in 8 s`."""
        if self.state is ServerState.READY:
            count = len(self.tools)
            return f"ready · {count} tool" + ("" if count == 1 else "s")
        if self.state is ServerState.STARTING:
            return "starting…"
        if self.state is ServerState.DISABLED:
            return "disabled in mcp.json"
        if self.state is ServerState.STOPPED:
            return "stopped"
        if self.misconfigured:
            return self.detail
        if self.retry_in is None:
            return f"{self.detail}; trying again now"
        return f"{self.detail}; trying again in {max(0.0, self.retry_in):.0f} s"


@dataclass(frozen=True)
class McpStatus:
    """The whole MCP host now: the file, its problem if it cannot be read, and every server."""

    config_path: Path
    servers: tuple[ServerStatus, ...] = ()
    config_problem: str | None = None
    """Why mcp.json cannot be used (names the line); the servers started before keep running."""
    left_out: tuple[str, ...] = ()
    """Tools not declared because of the cap on declared tools."""

    @property
    def declared(self) -> int:
        return sum(1 for server in self.servers for tool in server.tools if tool.function)

    def lines(self) -> list[str]:
        """One line for the whole host, then one per server: for the status window and the log."""
        if not self.servers and not self.config_problem:
            return []
        ready = sum(1 for server in self.servers if server.state is ServerState.READY)
        head = f"MCP: {ready} of {len(self.servers)} servers ready, {self.declared} tools"
        if self.left_out:
            head += f" ({len(self.left_out)} more left out by the cap)"
        lines = [head]
        if self.config_problem:
            lines.append(self.config_problem)
        lines.extend(f"{server.name}: {server.summary()}" for server in self.servers)
        return lines
