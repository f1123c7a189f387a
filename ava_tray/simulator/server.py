"""A loopback Realtime server speaking the GA subset AVA uses, with faults on demand (demo mode and tests)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ava_tray.realtime.connection import is_loopback
from ava_tray.redact import RedactingFilter, register_secret
from ava_tray.simulator.connection import SimulatedConnection
from ava_tray.simulator.faults import HANDSHAKE_REFUSALS, Fault, FaultSchedule
from ava_tray.simulator.model import FunctionCall, SessionModel, SimulatedSession
from ava_tray.simulator.server_events import Event

logger = logging.getLogger(__name__)

_websockets_logger = logging.getLogger(f"{__name__}.websockets")
_websockets_logger.addFilter(RedactingFilter())

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CLOSE_TIMEOUT = 2.0
WAIT_RECHECK_SECONDS = 0.1
"""`wait_for` wakes on every simulator change; this re-check covers predicates over outside state."""


def _loopback_host(host: str) -> str:
    """The host to bind, or ValueError if it is not a loopback address."""
    if not is_loopback(host):
        raise ValueError(f"The simulator listens on loopback only (127.0.0.1 or ::1), not {host!r}.")
    return "127.0.0.1" if host == "localhost" else host


class RealtimeSimulator:
    """A local stand-in for the OpenAI Realtime API (GA events) on a loopback port.

    Sessions end at `session_limit` seconds like OpenAI's do; `inject` stages failures; `sessions` records
    what every connection did. `reply_speed` (default 2.0) is how much faster than real time replies stream.
    `record_audio=False` keeps append events in `client_events` without their audio (long demo sessions).
    Each session's `SessionModel` reads these settings from the simulator as they are at the time.
    Call everything from the event loop's thread.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, session_limit: float = 3600.0,
                 api_key: str | None = None, expiry_error_first: bool = False,
                 reply_seconds: float | None = None, speech_threshold: float = 500.0,
                 silence_ms: int = 500, record_audio: bool = True, azure: bool = False,
                 refused_models: frozenset[str] = frozenset(), refuse_at_handshake: bool = False) -> None:
        if session_limit <= 0:
            raise ValueError("session_limit must be positive")
        if reply_seconds is not None and reply_seconds <= 0:
            raise ValueError("reply_seconds must be positive")
        self.host = host
        self.session_limit = float(session_limit)
        self.api_key = api_key
        self.expiry_error_first = expiry_error_first
        self.reply_seconds = reply_seconds
        self.speech_threshold = speech_threshold
        self.silence_ms = silence_ms
        self.record_audio = record_audio
        self.reply_speed = 2.0
        self.azure = azure
        """Take the key as Azure does: in an `api-key` header (a Bearer API key is refused with HTTP 401)."""
        self.refused_models = refused_models
        """Models (or Azure deployments) this server will not serve: `model_not_found` after `session.update`,
        or with `refuse_at_handshake` an HTTP 404 before the upgrade."""
        self.refuse_at_handshake = refuse_at_handshake
        self.reply_usage: Event | None = None
        """The `usage` every completed response reports (a scripted conversation with known cost); None: a
        usage that follows the reply's length."""
        self.sessions: list[SimulatedSession] = []
        self.max_concurrent = 0
        self.refused_handshakes = 0
        self._port = port
        self._bind_host: str | None = None
        self._listener: Server | None = None
        self._servers: list[Server] = []
        self._connections: list[SimulatedConnection] = []
        self._faults = FaultSchedule()
        self._function_calls: deque[FunctionCall] = deque()
        self._ids = itertools.count(1)
        self._change = asyncio.Event()
        self._stopped = False
        if api_key:
            register_secret(api_key)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and listen; ValueError for a host that is not loopback."""
        if self._bind_host is not None:
            raise RuntimeError("the simulator is already started")
        self._bind_host = _loopback_host(self.host)
        await self._listen()
        logger.info("Realtime simulator listening on %s", self.url)

    async def stop(self) -> None:
        """Close every session (1001 "server shutting down") and the server; safe to call twice."""
        if self._stopped or self._bind_host is None:
            self._stopped = True
            return
        self._stopped = True
        connections = list(self._connections)
        for connection in connections:
            connection.shut_down()
        if connections:
            await asyncio.gather(*(connection.done.wait() for connection in connections))
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._listener = None
        self._changed()
        logger.info("Realtime simulator stopped")

    async def __aenter__(self) -> RealtimeSimulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def close_port(self) -> None:
        """Stop listening (connections are refused); existing sessions carry on."""
        if self._listener is not None:
            self._listener.server.close()
            self._listener = None
            logger.info("Realtime simulator stopped listening on port %d", self._port)

    async def open_port(self) -> None:
        """Listen again on the same port after `close_port`."""
        if self._bind_host is None or self._stopped:
            raise RuntimeError("the simulator is not running")
        if self._listener is None:
            await self._listen()
            logger.info("Realtime simulator listening again on port %d", self._port)

    async def _listen(self) -> None:
        assert self._bind_host is not None
        server = await serve(
            self._handle, self._bind_host, self._port,
            process_request=self._process_request,
            server_header="ava-tray-simulator",
            compression=None,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_MESSAGE_BYTES,
            logger=_websockets_logger,
        )
        self._listener = server
        self._servers.append(server)
        self._port = server.sockets[0].getsockname()[1]

    # -- addresses and state ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = self._bind_host or _loopback_host(self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self._port}/v1/realtime?model=gpt-realtime"

    @property
    def open_sessions(self) -> list[SimulatedSession]:
        return [session for session in self.sessions if session.open]

    @property
    def idle(self) -> bool:
        """Some session is ready and not replying: `request_reply` would start a reply now."""
        return any(connection.idle for connection in self._connections)

    def describe(self) -> str:
        """One line per session, for failure messages."""
        if not self.sessions:
            return "no sessions"
        return "; ".join(
            f"{s.id} {'open' if s.open else f'closed {s.close_code}'} audio_in={s.received_audio_ms:.0f}ms "
            f"speech_started={s.speech_started} replies={s.replies_sent} cancelled={s.replies_cancelled}"
            for s in self.sessions)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> None:  # noqa: ASYNC109 (public API)
        """Return once `predicate()` is true; TimeoutError (saying what was awaited) after `timeout` seconds.

        A predicate that raises LookupError (say, `sessions[0]` before any session) counts as false.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            change = self._change
            with contextlib.suppress(LookupError):
                if predicate():
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"wait_for timed out after {timeout:g} s waiting for "
                                   f"{_describe_predicate(predicate)}; {self.describe()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(change.wait(), min(remaining, WAIT_RECHECK_SECONDS))

    def _changed(self) -> None:
        """Wake every `wait_for`."""
        self._change.set()
        self._change = asyncio.Event()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_sim{next(self._ids):06d}"

    # -- faults and function calls --------------------------------------------------------------

    def inject(self, fault: Fault, count: int = 1) -> None:
        """Stage `fault`.

        HTTP faults refuse the next `count` handshakes. Session-ending faults hit every open session at once,
        and the rest of `count` (or all of it, if none was open) the following sessions, one each, right
        after their `session.created`. MALFORMED_JSON and UNKNOWN_EVENT send `count` frames to every open
        session, or else to the next session.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(fault)
        ready = [] if fault.at_handshake else [connection for connection in self._connections if connection.ready]
        for connection in ready:
            connection.apply_fault(fault, count)
        self._faults.stage(fault, count, hit_open_sessions=bool(ready))
        self._changed()

    def request_function_call(self, name: str, arguments: dict[str, Any]) -> None:
        """Make the next reply a call of `name(**arguments)`; sent at once if a session is open and idle."""
        json.dumps(arguments)  # fail here, not in the session, if it cannot be sent
        self._function_calls.append(FunctionCall(name, dict(arguments)))
        for connection in reversed(self._connections):
            if connection.idle:
                connection.start_function_call(self._function_calls.popleft())
                break

    def request_reply(self, seconds: float) -> bool:
        """Send an audio reply of `seconds` (synthetic voice) without a user turn, on the newest idle
        session; False when no session is idle (tests of echo: AVA speaking with nobody talking)."""
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        for connection in reversed(self._connections):
            if connection.idle:
                return connection.start_audio_reply(seconds)
        return False

    def _take_function_call(self) -> FunctionCall | None:
        return self._function_calls.popleft() if self._function_calls else None

    # -- connections ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse handshakes for staged HTTP faults and for paths that are not the Realtime endpoint."""
        fault = self._faults.next_handshake()
        if fault is not None:
            self.refused_handshakes += 1
            self._changed()
            logger.info("refusing a handshake (%s)", fault.value)
            refusal = HANDSHAKE_REFUSALS[fault]
            return _json_response(connection, refusal.status, refusal.error_type, refusal.error_code, refusal.message)
        if not urlsplit(request.path).path.rstrip("/").endswith("/realtime"):
            return _json_response(connection, 404, "invalid_request_error", "not_found",
                                  f"No Realtime endpoint at {urlsplit(request.path).path!r}; use /v1/realtime.")
        if self.azure and self.api_key is not None:
            given = request.headers.get("api-key") or ""
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                self.refused_handshakes += 1
                self._changed()
                return _json_response(connection, 401, "invalid_request_error", "401",
                                      "Access denied due to invalid subscription key or wrong API endpoint "
                                      "(simulated Azure: the key goes in the api-key header).")
        model = _requested_model(request.path)
        if self.refuse_at_handshake and model in self.refused_models:
            self.refused_handshakes += 1
            self._changed()
            code = "DeploymentNotFound" if self.azure else "model_not_found"
            return _json_response(connection, 404, "invalid_request_error", code,
                                  f"The model or deployment {model!r} does not exist (simulated).")
        return None

    def azure_url(self, deployment: str, *, legacy: bool = False) -> str:
        """An Azure-shaped address of this simulator: the GA `/openai/v1/realtime?model=`, or the older
        `/openai/realtime?api-version=&deployment=`."""
        base = self.url.split("/v1/realtime", 1)[0]
        if legacy:
            return f"{base}/openai/realtime?api-version=2025-04-01-preview&deployment={deployment}"
        return f"{base}/openai/v1/realtime?model={deployment}"

    async def _handle(self, websocket: ServerConnection) -> None:
        request = websocket.request
        headers = request.headers if request is not None else Headers()
        session = SimulatedSession(
            id=self._new_id("sess"),
            opened_at=time.monotonic(),
            expires_at=int(time.time() + self.session_limit),
            authorization=headers.get("Authorization"),
            api_key_header=headers.get("api-key"),
            request_path=request.path if request is not None else "",
        )
        model = SessionModel(session, self, model_name=_requested_model(request.path if request else ""),
                             new_id=self._new_id, next_function_call=self._take_function_call)
        connection = SimulatedConnection(websocket, model, on_change=self._changed)
        self.sessions.append(session)
        self._connections.append(connection)
        self.max_concurrent = max(self.max_concurrent, len(self.open_sessions))
        logger.info("simulated session %s opened", session.id)
        self._changed()
        try:
            if connection.open():
                for fault, count in self._faults.for_new_session():
                    connection.apply_fault(fault, count)
            await connection.run()
        finally:
            self._connections.remove(connection)
            self._changed()


def _requested_model(path: str) -> str:
    """The `model` (or Azure's `deployment`) query parameter of the request path (`gpt-realtime` when absent)."""
    query = parse_qs(urlsplit(path).query)
    models = query.get("model") or query.get("deployment")
    return models[0] if models else "gpt-realtime"


def _json_response(connection: ServerConnection, status: int, type_: str, code: str | None,
                   message: str) -> Response:
    body = json.dumps({"error": {"message": message, "type": type_, "code": code, "param": None}})
    response = connection.respond(status, body + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


def _describe_predicate(predicate: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
