"""AVA as an MCP host: the servers of mcp.json kept running for AVA's whole life, their tools in the registry.

`McpHost.running()` starts every configured server (waiting a few seconds, so the first session already
declares their tools), keeps them across every Realtime session, follows changes of mcp.json without a
restart (its modification time is checked every 2 s) and stops them all on exit. Each server's tools are
registered in the `ToolRegistry` as `server__tool`; every change of that set raises the registry's
`version`, so a session can tell that what it declared is out of date.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ava_tray.threads import run_on_own_thread
from ava_tray.tools.mcp.adapt import adapt_schema, describe_tool, function_names
from ava_tray.tools.mcp.config import McpConfig, McpConfigError, ServerConfig, load_config
from ava_tray.tools.mcp.status import McpStatus, ServerState, ServerStatus, ToolListing, ToolStatus
from ava_tray.tools.registry import Tool, ToolError, ToolRegistry

if TYPE_CHECKING:
    from ava_tray.tools.mcp.connection import ServerConnection

logger = logging.getLogger(__name__)

POLL_INTERVAL = 2.0
"""Seconds between looks at mcp.json's modification time."""
STARTUP_WAIT = 5.0
"""At start, seconds to wait for the servers' first attempt, so the first session declares their tools;
a slower server's tools join from the next session (or session.update) on."""
MAX_TOOLS = 64
"""MCP tools declared to the model at most (servers first in mcp.json first); the rest are left out."""
SUMMARY_ARGUMENTS = 200

StatusListener = Callable[[McpStatus], None]


class McpHost:
    """The MCP servers configured in `config_path`, and their tools in `registry`."""

    def __init__(self, registry: ToolRegistry, config_path: Path, *, poll_interval: float = POLL_INTERVAL,
                 max_tools: int = MAX_TOOLS, startup_wait: float = STARTUP_WAIT) -> None:
        self.registry = registry
        self.config_path = config_path
        self.poll_interval = poll_interval
        self.max_tools = max_tools
        self.startup_wait = startup_wait
        self._config = McpConfig()
        self._problem: str | None = None
        self._connections: dict[str, ServerConnection] = {}
        self._declared: dict[str, _Declared] = {}
        self._left_out: tuple[str, ...] = ()
        self._listeners: list[StatusListener] = []
        self._stamp: tuple[int, int, int] | None = None
        self._reloading = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._running = False

    # -- the status ----------------------------------------------------------------------------------

    def status(self) -> McpStatus:
        """Every configured server now, with its state and tools."""
        now = _loop_time()
        declared = {(entry.server, entry.tool): name for name, entry in self._declared.items()}
        servers = []
        for config in self._config.servers:
            connection = self._connections.get(config.name)
            if connection is None:
                state = ServerState.DISABLED if config.disabled else \
                    ServerState.FAILED if config.problem else ServerState.STOPPED
                detail = config.problem or ("disabled in mcp.json" if config.disabled else "stopped")
                servers.append(ServerStatus(config.name, config.transport, state, detail, line=config.line,
                                            misconfigured=bool(config.problem)))
                continue
            tools = []
            for listing in connection.tools:
                function = declared.get((config.name, listing.name))
                tools.append(ToolStatus(listing.name, function, (listing.description or listing.title or "").strip(),
                                        not _approved(config, listing.name, function)))
            retry_in = connection.retry_at - now if connection.retry_at is not None and now is not None else None
            servers.append(ServerStatus(config.name, config.transport, connection.state, connection.detail,
                                        tuple(tools), connection.restarts, retry_in, config.line))
        return McpStatus(self.config_path, tuple(servers), self._problem, self._left_out)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        """Call `listener(status)` on the event loop after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self) -> None:
        """A server changed state or tools: bring the registry in step and tell the listeners."""
        self._sync_tools()
        status = self.status()
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                logger.exception("an MCP status listener failed")

    # -- running -------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[McpHost]:
        """Start the configured servers, follow mcp.json, and stop every server on exit."""
        self._running = True
        try:
            await self.reload()
            await self.wait_for_first_attempts(self.startup_wait)
            self._watcher = asyncio.create_task(self._watch_file(), name="ava-mcp-config")
            yield self
        finally:
            self._running = False
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            async with self._reloading:
                await self._stop(list(self._connections))
            self._changed()

    async def wait_for_first_attempts(self, patience: float) -> None:
        """Wait (at most `patience` s) until every server is up or has failed its first start."""
        waits = [connection.first_attempt_done.wait() for connection in self._connections.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), patience)

    async def reload(self) -> None:
        """Read mcp.json now and apply it: new servers start, removed ones stop, changed ones restart,
        the others keep running untouched. A file that cannot be read changes nothing but the status."""
        async with self._reloading:
            self._stamp = _stamp_of(self.config_path)
            try:
                config = load_config(self.config_path)
            except McpConfigError as exc:
                if str(exc) != self._problem:
                    logger.warning("%s", exc)
                self._problem = str(exc)
                self._changed()
                return
            if self._problem:
                logger.info("%s can be read again", self.config_path)
            self._problem = None
            await self._apply(config)
            self._changed()

    async def _apply(self, config: McpConfig) -> None:
        wanted = {server.name: server for server in config.servers if not (server.problem or server.disabled)}
        outdated = [name for name, connection in self._connections.items()
                    if name not in wanted or wanted[name].launch_key() != connection.config.launch_key()]
        if outdated:
            logger.info("MCP servers stopping (removed or changed in mcp.json): %s", ", ".join(outdated))
            await self._stop(outdated)
        self._config = config
        for server in config.servers:
            if server.problem:
                logger.warning("MCP server %r not started: %s", server.name, server.problem)
        for name, server in wanted.items():
            connection = self._connections.get(name)
            if connection is not None:
                connection.config = server  # autoApprove or the time-out changed: no restart needed
                continue
            connection_type = await _connection_class()
            connection = connection_type(server, self._changed)
            self._connections[name] = connection
            connection.start()
        self._connections = {name: self._connections[name] for name in wanted if name in self._connections}

    async def _stop(self, names: list[str]) -> None:
        connections = [self._connections.pop(name) for name in names if name in self._connections]
        await asyncio.gather(*(connection.stop() for connection in connections), return_exceptions=True)

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                if _stamp_of(self.config_path) != self._stamp:
                    logger.info("%s changed: applying it", self.config_path)
                    await self.reload()
            except Exception:
                logger.exception("applying the changed %s failed", self.config_path)

    # -- the tools in the registry -------------------------------------------------------------------

    def _sync_tools(self) -> None:
        """Register exactly the tools the servers list now (up to the cap), as one registry change."""
        taken = {name for name in self.registry.names if name not in self._declared}
        wanted: dict[str, _Declared] = {}
        for config in self._config.servers:
            connection = self._connections.get(config.name)
            if connection is None or not connection.tools or not self._running:
                continue
            names = function_names(config.name, [listing.name for listing in connection.tools], taken)
            for listing in connection.tools:
                function = names[listing.name]
                taken.add(function)
                wanted[function] = _Declared(config.name, listing.name, (config, listing))
        offered = len(wanted)
        left_out = tuple(list(wanted)[self.max_tools:])
        if left_out and left_out != self._left_out:
            logger.warning("MCP servers offer %d tools; only the first %d are declared (the cap). Left out: %s",
                           offered, self.max_tools, ", ".join(left_out))
        self._left_out = left_out
        wanted = dict(list(wanted.items())[:self.max_tools])
        remove = [name for name, entry in self._declared.items() if wanted.get(name) != entry]
        add: list[Tool] = []
        for function, entry in wanted.items():
            if self._declared.get(function) == entry:
                continue
            config, listing = entry.source
            try:
                add.append(self._tool(function, config, listing))
            except ValueError as exc:
                logger.warning("MCP tool %r of %r not declared: %s", listing.name, config.name, exc)
        if not remove and not add:
            return
        self.registry.update(remove=remove, add=add)
        for name in remove:
            del self._declared[name]
        self._declared.update({item.name: wanted[item.name] for item in add})
        logger.info("MCP tools declared from the next session on: %d of %d offered (tool set version %d)",
                    len(self._declared), offered, self.registry.version)

    def _tool(self, function: str, config: ServerConfig, listing: ToolListing) -> Tool:
        call = _ToolCall(self, config.name, listing.name)

        def summarize(arguments: dict[str, Any]) -> str:
            shown = json.dumps(arguments, ensure_ascii=False, default=str)
            if len(shown) > SUMMARY_ARGUMENTS:
                shown = shown[:SUMMARY_ARGUMENTS - 1] + "…"
            return f"Run {listing.name} on the MCP server {config.name}" + (f" with {shown}" if arguments else "")

        return Tool(name=function, description=describe_tool(config.name, listing.name, listing.description,
                                                             listing.title),
                    function=call.run, parameters=adapt_schema(listing.input_schema),
                    changes_something=not _approved(config, listing.name, function), timeout=config.timeout,
                    summarize=summarize, own_schema=True)

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run a server's tool (through whichever connection serves that server now)."""
        connection = self._connections.get(server)
        if connection is None:
            raise ToolError(f"The MCP server {server!r} is not running any more.")
        return await connection.call(tool, arguments, connection.config.timeout)


@dataclass(eq=False)
class _Declared:
    """A tool registered for a server; equal to another when it would declare and behave the same."""

    server: str
    tool: str
    source: tuple[ServerConfig, ToolListing]

    def _key(self) -> tuple[object, ...]:
        config, listing = self.source
        return (self.server, self.tool, listing, config.auto_approve, config.timeout)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Declared) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]


class _ToolCall:
    """A registered tool's function: the call goes to the server by name, through the host."""

    def __init__(self, host: McpHost, server: str, tool: str) -> None:
        self.host = host
        self.server = server
        self.tool = tool

    async def run(self, **arguments: Any) -> dict[str, Any]:
        return await self.host.call(self.server, self.tool, arguments)


def _approved(config: ServerConfig, tool: str, function: str | None) -> bool:
    return tool in config.auto_approve or (function is not None and function in config.auto_approve)


def _stamp_of(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


_CONNECTION_MODULE = "ava_tray.tools.mcp.connection"


async def _connection_class() -> type[ServerConnection]:
    """`ServerConnection`, importing the SDK (about a second) off the event loop the first time."""
    module = sys.modules.get(_CONNECTION_MODULE)
    if module is None:
        began = time.perf_counter()
        module = await run_on_own_thread(lambda: importlib.import_module(_CONNECTION_MODULE), name="ava-mcp-import")
        logger.info("the MCP SDK loaded in %.2f s", time.perf_counter() - began)
    result: type[ServerConnection] = module.ServerConnection
    return result
