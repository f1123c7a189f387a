"""One configured MCP server, kept connected for as long as AVA runs (through the official `mcp` SDK).

A `ServerConnection` starts its server once, lists its tools, and then watches it: a server process that
exits, or a connection that stops answering, is started again after a back-off (0.5 s, 1 s, 2 s, … up to
60 s), and its tools come back. Realtime sessions never touch it, so reconnects and rollovers keep the
same server process. A stdio server's stderr goes to AVA's log, line by line.

This module imports the SDK (about a second's work), so `ava_tray.tools.mcp.host` loads it only when a
server is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ava_tray import __version__
from ava_tray.redact import redact
from ava_tray.threads import run_on_own_thread
from ava_tray.tools.mcp.adapt import result_text, within_budget
from ava_tray.tools.mcp.config import ServerConfig
from ava_tray.tools.mcp.secrets import SecretUnavailable, resolve_secrets
from ava_tray.tools.mcp.status import ServerState, ToolListing
from ava_tray.tools.registry import ToolError

logger = logging.getLogger(__name__)

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
"""Seconds before starting a server again after its 1st, 2nd, … failure in a row."""
STABLE_AFTER = 30.0
"""A server that ran this long before it failed starts its back-off from the beginning again."""
START_TIMEOUT = 30.0
"""Seconds a server has to answer the handshake and list its tools."""
PROBE_INTERVAL = 15.0
"""An idle server's tools are listed again this often: a liveness check that also sees new tools."""
PROBE_TIMEOUT = 10.0
READY_WAIT = 5.0
"""A call that arrives while its server (re)starts waits this long for it."""
STOP_TIMEOUT = 8.0
"""The SDK closes stdin, waits 2 s, then terminates and kills: within this, or the task is cancelled."""
MAX_LIST_PAGES = 20
STDERR_LINE_CHARS = 2000


class ServerConnection:
    """Keeps one MCP server running and connected; `call` runs one of its tools."""

    def __init__(self, config: ServerConfig, on_change: Callable[[], None]) -> None:
        self.config = config
        self._on_change = on_change
        self.state = ServerState.DISABLED if config.disabled else \
            ServerState.FAILED if config.problem else ServerState.STARTING
        self.detail = config.problem or ("disabled in mcp.json" if config.disabled else "starting")
        self.tools: tuple[ToolListing, ...] = ()
        self.restarts = 0
        self.retry_at: float | None = None
        """`loop.time()` of the next start attempt while RESTARTING or FAILED."""
        self.first_attempt_done = asyncio.Event()
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._lost: str | None = None
        self._relist = False
        self._calls = 0
        self._stderr_tail: deque[str] = deque(maxlen=3)
        self._stderr_writer: TextIO | None = None
        self._last_reason = ""
        self._ever_ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    # -- lifetime ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and keep it running until `stop()` (a misconfigured one is only listed)."""
        if self.config.disabled or self.config.problem:
            if self.config.problem:
                logger.warning("MCP server %r not started: %s", self.name, self.config.problem)
            self.first_attempt_done.set()
            return
        if self._task is None:
            self._task = asyncio.create_task(self._keep_running(), name=f"ava-mcp-{self.name}")

    async def stop(self) -> None:
        """Stop the server (its process ends) and wait for it; idempotent."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None and self._client is None:
            task.cancel()  # still starting (a handshake can take 30 s): the SDK's shielded shutdown ends the process
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("MCP server %r did not stop within %g s: its task is cancelled", self.name,
                               STOP_TIMEOUT)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._set(ServerState.STOPPED, "stopped")

    async def _keep_running(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            began = loop.time()
            was_up = False
            try:
                reason = await self._serve()
                was_up = True
            except Exception as exc:
                was_up = self._client is not None
                reason = self._explain(exc)
                if not self._stopping.is_set():
                    logger.debug("MCP server %r failed", self.name, exc_info=exc)
            finally:
                self._client = None
                self._ready.clear()
            self.first_attempt_done.set()
            if self._stopping.is_set():
                break
            if loop.time() - began >= STABLE_AFTER:
                failures = 0
            delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            failures += 1
            self.restarts += 1
            self.retry_at = loop.time() + delay
            self._ever_ready = self._ever_ready or was_up
            state = ServerState.RESTARTING if self._ever_ready else ServerState.FAILED
            verb = "stopped" if was_up else "failed to start"
            again = reason == self._last_reason  # the same failure again: the log has it already
            self._last_reason = reason
            logger.log(logging.INFO if again else logging.WARNING, "MCP server %r %s: %s; starting it again in %g s",
                       self.name, verb, reason, delay)
            self._set(state, f"{verb}: {reason}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.retry_at = None

    async def _serve(self) -> str:
        """Start and connect, list the tools, then watch until the server is lost or AVA stops; returns why
        it ended. Raises if the server cannot be started."""
        self._lost = None
        self._relist = False
        if self.state is not ServerState.STARTING:
            self._set(self.state, self.detail)  # the reason stays; the status says it is trying again now
        async with contextlib.AsyncExitStack() as stack:
            transport = await self._transport(stack)
            client = Client(_WatchedTransport(transport, self._stream_ended), cache=None,
                            read_timeout_seconds=START_TIMEOUT, message_handler=self._on_message,
                            client_info=mcp_types.Implementation(name="ava-tray", version=__version__))
            await stack.enter_async_context(client)
            self._close_stderr_writer()
            tools = await _list_tools(client)
            self._client = client
            self.tools = tools
            self._ready.set()
            self.first_attempt_done.set()
            logger.info("MCP server %r is ready with %d tools (protocol %s)", self.name, len(tools),
                        client.protocol_version)
            self._set(ServerState.READY, _count(len(tools)))
            listener = asyncio.create_task(self._listen_for_tool_changes(client), name=f"ava-mcp-listen-{self.name}")
            try:
                return await self._watch(client)
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _watch(self, client: Client) -> str:
        """Wait for the server to be lost or for AVA to stop; list the tools again when they change."""
        loop = asyncio.get_running_loop()
        next_probe = loop.time() + PROBE_INTERVAL
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_probe - loop.time()))
            self._wake.clear()
            if self._stopping.is_set():
                return "AVA is stopping"
            if self._lost:
                return self._lost
            due = loop.time() >= next_probe and self._calls == 0
            if not (self._relist or due):
                continue
            self._relist = False
            next_probe = loop.time() + PROBE_INTERVAL
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    tools = await _list_tools(client)
            except TimeoutError:
                return f"it did not answer within {PROBE_TIMEOUT:g} s"
            except MCPError as exc:
                if exc.code == CONNECTION_CLOSED:
                    return self._lost or "the connection closed"
                logger.info("MCP server %r could not list its tools: %s", self.name, exc.message)
                continue
            except Exception as exc:
                return self._explain(exc)
            if tools != self.tools:
                logger.info("MCP server %r now has %d tools", self.name, len(tools))
                self.tools = tools
                self._set(ServerState.READY, _count(len(tools)))

    # -- transports ----------------------------------------------------------------------------------

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        """The SDK transport for this server, its resources on `stack` (secrets and paths looked up off the loop)."""
        config = self.config
        if config.url:
            headers = await run_on_own_thread(lambda: resolve_secrets(config.headers, server=config.name),
                                              name="ava-mcp-secrets")
            http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
            stack.push_async_callback(http.aclose)
            logger.info("connecting to the MCP server %r at %s", config.name, _shown(config.url))
            return streamable_http_client(config.url, http_client=http)
        parameters = await run_on_own_thread(lambda: _stdio_parameters(config), name="ava-mcp-secrets")
        self._stderr_writer = _stderr_pipe(config.name, self._stderr_tail)
        stack.callback(self._close_stderr_writer)
        logger.info("starting the MCP server %r: %s", config.name, config.command)
        return stdio_client(parameters, errlog=self._stderr_writer)

    def _close_stderr_writer(self) -> None:
        """Close AVA's copy of the stderr pipe once the process has its own: the reader then ends with it."""
        writer, self._stderr_writer = self._stderr_writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()

    async def _listen_for_tool_changes(self, client: Client) -> None:
        """On a 2026-07-28 connection, subscribe to tools/list_changed (earlier servers send it unasked, to
        `_on_message`); without it the periodic listing still sees new tools."""
        capabilities = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not (capabilities and capabilities.list_changed):
            return
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    self._relist = True
                    self._wake.set()
        except Exception as exc:
            logger.debug("MCP server %r: no tools/list_changed subscription (%s)", self.name, _leaf(exc))

    def _stream_ended(self) -> None:
        if not self._lost:
            self._lost = "its process exited" if self.config.command else "the connection closed"
            tail = self._last_stderr()
            if tail:
                self._lost += f" ({tail})"
        self._wake.set()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist = True
            self._wake.set()
        elif isinstance(message, Exception):
            logger.debug("MCP server %r sent something unreadable: %s", self.name, message)

    # -- calls ---------------------------------------------------------------------------------------

    async def call(self, tool: str, arguments: dict[str, Any], time_limit: float) -> dict[str, Any]:
        """Run `tool` on the server; its text (other content summarised), cut to the budget. Raises
        `ToolError` with a sentence for the model when the server cannot run it."""
        if self._starting_soon():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), min(READY_WAIT, time_limit))
        client = self._client
        if client is None or not self._ready.is_set():
            raise ToolError(f"The MCP server {self.name!r} is not running ({self.detail}).")
        self._calls += 1
        try:
            result = await client.call_tool(tool, arguments, read_timeout_seconds=time_limit + 1.0)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._connection_failed("the connection closed during a call")
                raise ToolError(f"The MCP server {self.name!r} stopped during the call; AVA is starting it again, "
                                "so try once more in a moment.") from None
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(f"The MCP server {self.name!r} did not answer within {time_limit:g} seconds.") \
                    from None
            raise ToolError(f"The MCP server {self.name!r} refused the call: {redact(exc.message)}.") from None
        except (httpx2.TransportError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._connection_failed(self._explain(exc))
            raise ToolError(f"The MCP server {self.name!r} cannot be reached ({self._explain(exc)}).") from None
        finally:
            self._calls -= 1
        text = result_text(result.content, result.structured_content)
        if result.is_error:
            raise ToolError(within_budget(text.strip() or f"The tool {tool} failed.", 2000)[0])
        kept, cut = within_budget(text)
        return {"result": kept, "truncated": True, "full_length": len(text)} if cut else {"result": kept}

    def _starting_soon(self) -> bool:
        """Not ready, but starting now or within `READY_WAIT` (worth a call's wait)."""
        if self._ready.is_set() or self.state not in (ServerState.STARTING, ServerState.RESTARTING):
            return False
        return self.retry_at is None or self.retry_at - asyncio.get_running_loop().time() < READY_WAIT

    def _connection_failed(self, reason: str) -> None:
        if not self._lost:
            self._lost = reason
        self._wake.set()

    # -- status --------------------------------------------------------------------------------------

    def _set(self, state: ServerState, detail: str) -> None:
        self.state = state
        self.detail = detail
        try:
            self._on_change()
        except Exception:
            logger.exception("an MCP status listener failed")

    def _last_stderr(self) -> str:
        return self._stderr_tail[-1] if self._stderr_tail else ""

    def _explain(self, exc: BaseException) -> str:
        """Why the server failed, as words for the status line (no secret, no traceback)."""
        exc = _leaf(exc)
        tail = self._last_stderr()
        if isinstance(exc, (_NotStartable, SecretUnavailable)):
            return str(exc)
        if isinstance(exc, FileNotFoundError):
            return f"the command {self.config.command!r} was not found"
        if isinstance(exc, PermissionError):
            return f"the command {self.config.command!r} cannot be run (permission denied)"
        if isinstance(exc, httpx2.HTTPStatusError):
            return f"{_shown(self.config.url)} answered HTTP {exc.response.status_code}"
        if isinstance(exc, httpx2.TimeoutException):
            return f"{_shown(self.config.url)} did not answer in time"
        if isinstance(exc, httpx2.TransportError):
            return f"{_shown(self.config.url)} cannot be reached ({type(exc).__name__})"
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return f"it did not answer within {START_TIMEOUT:g} s"
            if exc.code == CONNECTION_CLOSED:
                where = "its process exited" if self.config.command else "the connection closed"
                return f"{where} ({tail})" if tail else where
            return redact(exc.message)
        if isinstance(exc, OSError):
            return f"it could not be started ({exc.strerror or type(exc).__name__})"
        return redact(f"{type(exc).__name__}: {exc}")[:300]


class _NotStartable(Exception):
    """The configuration cannot work as it is (the message says why)."""


def _stdio_parameters(config: ServerConfig) -> StdioServerParameters:
    """How to start a stdio server: `~` expanded, `keyring:` values read (blocking)."""
    assert config.command is not None
    env = resolve_secrets(config.env, server=config.name)
    cwd = os.path.expanduser(config.cwd) if config.cwd else None
    if cwd is not None and not Path(cwd).is_dir():
        raise _NotStartable(f"its working directory {cwd!r} does not exist")
    return StdioServerParameters(command=os.path.expanduser(config.command), args=list(config.args),
                                 env=env or None, cwd=cwd)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _shown(url: str | None) -> str:
    """A server's address for the log and the status: no user name, password, query or fragment (they may
    hold a token)."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _count(tools: int) -> str:
    return f"{tools} tool" + ("" if tools == 1 else "s")


async def _list_tools(client: Client) -> tuple[ToolListing, ...]:
    """Every tool the server lists, page by page."""
    found: list[ToolListing] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        found.extend(ToolListing(tool.name, tool.description, tool.title, dict(tool.input_schema))
                     for tool in page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(found)


def _stderr_pipe(server: str, tail: deque[str]) -> TextIO:
    """A pipe for a server's stderr: each line goes to AVA's log (redacted) from a daemon thread, which
    ends when the process and AVA's copy of the write end are closed. Returns the write end."""
    read_fd, write_fd = os.pipe()
    stderr_logger = logging.getLogger(f"{__name__}.stderr")

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    line = redact(line[:STDERR_LINE_CHARS])
                    tail.append(line[:200])
                    stderr_logger.info("[%s] %s", server, line)

    threading.Thread(target=pump, name=f"ava-mcp-stderr-{server}", daemon=True).start()
    return cast(TextIO, os.fdopen(write_fd, "w"))


class _WatchedStream:
    """The SDK's read stream, telling its owner when it ends (the server process exited)."""

    def __init__(self, inner: Any, ended: Callable[[], None]) -> None:
        self._inner = inner
        self._ended = ended

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._ended()
            raise
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()


class _WatchedTransport:
    """An SDK transport whose read stream tells `ended()` when it ends."""

    def __init__(self, inner: Any, ended: Callable[[], None]) -> None:
        self._inner = inner
        self._ended = ended

    async def __aenter__(self) -> tuple[Any, Any]:
        read, write = await self._inner.__aenter__()
        return _WatchedStream(read, self._ended), write

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> bool | None:
        result: bool | None = await self._inner.__aexit__(exc_type, exc, traceback)
        return result
