"""A Realtime conversation: one or (during a handover) two server sessions sharing the audio devices.

`RealtimeSession.run` serves a conversation until its server session ends on its own, and returns a
`SessionEnding` saying why; the supervisor decides what comes next. Before the server's limit it rolls
over *make before break*: a second session is opened, configured and given the conversation so far,
the microphone switches to it in one step (blocks captured meanwhile are held and go to the new
session), and the old one closes with 1000 once its reply is done. Cleanup is one idempotent path that
every exit takes: audio streams closed, tasks cancelled and awaited, sockets closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ava_tray.audio import AudioDeviceError, VoiceIO
from ava_tray.clock import Clock, SystemClock
from ava_tray.conversation import Transcript
from ava_tray.metrics import AudioLatency
from ava_tray.realtime import events
from ava_tray.realtime.connection import Keepalive, open_connection
from ava_tray.realtime.ending import FATAL_ERROR_CODES, Cause, SessionAborted, SessionEnding, classify_ending
from ava_tray.supervisor import SessionContext

logger = logging.getLogger(__name__)

SESSION_READY_TIMEOUT = 10.0
WATCH_INTERVAL = 0.1


class ToolHost(Protocol):
    """The tools (and memory digest) every new session is configured with, and how a call is run."""

    def specs(self) -> tuple[events.ToolSpec, ...]:
        """The tools to declare in `session.update`."""
        ...

    def instructions_suffix(self) -> str:
        """Text appended to the instructions (e.g. a digest of long-term memory); may be empty."""
        ...

    async def call(self, name: str, arguments: str, call_id: str) -> str:
        """Run one tool call and return its output for the model; never raises."""
        ...


@dataclass(frozen=True)
class RolloverPolicy:
    """When to hand a conversation over to a fresh session before the server's limit."""

    enabled: bool = True
    margin: float = 300.0
    """Start looking for a turn boundary this long before `expires_at`."""
    hard_margin: float = 60.0
    """Hand over at this point even mid-turn."""
    retry_after: float = 5.0
    """A failed handover is tried again after this long (until the server ends the session)."""

    def window(self, created_at: float, expires_at: float) -> tuple[float, float]:
        """Wall times (soft, hard) of the handover window; a short session gets a proportionally small one."""
        length = max(0.0, expires_at - created_at)
        margin = min(self.margin, length / 4)
        hard = min(self.hard_margin, margin / 2)
        return expires_at - margin, expires_at - hard


@dataclass(frozen=True)
class SessionOptions:
    """Everything a session needs that does not change between sessions."""

    url: str
    api_key: str | None
    config: events.SessionConfig
    keepalive: Keepalive = field(default_factory=Keepalive)
    rollover: RolloverPolicy = field(default_factory=RolloverPolicy)


class RealtimeSession:
    """Serves conversations; `run` is the supervisor's `SessionRunner`."""

    def __init__(
        self,
        options: SessionOptions,
        voice_io_factory: Callable[[], VoiceIO],
        *,
        clock: Clock | None = None,
        latency: AudioLatency | None = None,
        tools: ToolHost | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.options = options
        self.voice_io_factory = voice_io_factory
        self.clock = clock or SystemClock()
        self.latency = latency or AudioLatency()
        self.tools = tools
        self.transcript = transcript if transcript is not None else Transcript()
        self.muted = False
        self.handovers = 0
        self._current: _Conversation | None = None

    async def run(self, context: SessionContext) -> SessionEnding:
        """Open, configure and serve one conversation; return why its server session ended."""
        conversation = _Conversation(self, context)
        self._current = conversation
        try:
            return await conversation.serve()
        finally:
            self._current = None

    def announce(self, text: str) -> bool:
        """Have AVA say `text` now (e.g. a reminder that came due); False when no session is up."""
        conversation = self._current
        active = conversation.active if conversation is not None else None
        if active is None or active.closed:
            return False
        active.send_event(events.system_message(text))
        active.send_event(events.response_create())
        return True


class _Conversation:
    """The audio devices and the server session(s) of one supervisor run."""

    def __init__(self, owner: RealtimeSession, context: SessionContext) -> None:
        self.owner = owner
        self.context = context
        self.voice: VoiceIO | None = None
        self.active: _Connection | None = None
        self.held: list[tuple[bytes, float]] | None = None
        self.connections: list[_Connection] = []
        self.retiring: list[asyncio.Task[None]] = []
        self.item_owner: dict[str, _Connection] = {}
        self.cut_items: set[str] = set()
        self.tool_tasks: list[asyncio.Task[None]] = []
        self.speaking = False
        self.closed = False

    async def serve(self) -> SessionEnding:
        try:
            connection = self._connect()
            ended = await connection.wait_ready()
            if ended is not None:
                return ended
            try:
                self.voice = self.owner.voice_io_factory()
                await self.voice.open(self._on_mic_block)
            except AudioDeviceError as exc:
                return SessionEnding(Cause.OTHER, str(exc))
            self.active = connection
            self.context.ready(connection.expires_at)
            return await self._watch()
        finally:
            await self.cleanup()

    def _connect(self) -> _Connection:
        connection = _Connection(self)
        self.connections.append(connection)
        return connection

    async def _watch(self) -> SessionEnding:
        """Until the active session ends: track speaking, audio failures and the rollover window."""
        policy = self.owner.options.rollover
        clock = self.owner.clock
        next_try = 0.0
        while True:
            active = self.active
            assert active is not None and self.voice is not None
            await asyncio.wait({active.main}, timeout=WATCH_INTERVAL)
            if active.main.done():
                return active.main.result()
            if self.voice.failure is not None:
                logger.warning("audio failed: %s", self.voice.failure)
                return SessionEnding(Cause.OTHER, str(self.voice.failure))
            if self.speaking and not self.voice.is_playing:
                self._set_speaking(False)
            if not policy.enabled or active.expires_at is None or clock.monotonic() < next_try:
                continue
            soft, hard = policy.window(active.created_at, active.expires_at)
            now = clock.wall()
            due = now >= hard or (now >= soft and self._at_turn_boundary(active))
            if due and not await self._hand_over(active):
                next_try = clock.monotonic() + policy.retry_after

    def _at_turn_boundary(self, connection: _Connection) -> bool:
        """No reply or tool call in progress, the user not speaking, playback drained."""
        assert self.voice is not None
        return not (connection.response_active or connection.user_speaking or self.voice.is_playing
                    or self.busy_with_tools)

    async def _hand_over(self, old: _Connection) -> bool:
        """Make before break: the new session is ready before the microphone moves to it."""
        logger.info("rolling over to a fresh session (old one expires at %s)", old.expires_at)
        self.held = []
        new = self._connect()
        ended = await new.wait_ready()
        held, self.held = self.held, None
        if ended is not None:
            logger.warning("rollover failed (%s); keeping the current session", ended.message)
            self.connections.remove(new)
            for pcm, captured_at in held:
                old.send_mic(pcm, captured_at)
            return False
        for pcm, captured_at in held:
            new.send_mic(pcm, captured_at)
        self.active = new
        self.owner.handovers += 1
        self.context.rolled_over(new.expires_at)
        self.retiring.append(asyncio.create_task(self._retire(old), name="ava-session-retire"))
        return True

    async def _retire(self, old: _Connection) -> None:
        """Let the old session finish the reply it is streaming (never past its limit), then close it."""
        if old.response_active and old.expires_at is not None:
            remaining = old.expires_at - self.owner.clock.wall() - 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, remaining)):
                    await old.response_finished()
        await old.close("rolled over to a fresh session")
        with contextlib.suppress(ValueError):
            self.connections.remove(old)

    # -- audio both ways -----------------------------------------------------------------------

    def _on_mic_block(self, pcm: bytes, captured_at: float) -> None:
        """On the loop: route one microphone block to the active session (held during a handover)."""
        if self.closed or self.owner.muted:
            return
        if self.held is not None:
            self.held.append((pcm, captured_at))
        elif self.active is not None:
            self.active.send_mic(pcm, captured_at)

    def play(self, connection: _Connection, item_id: str, pcm: bytes) -> None:
        if self.voice is None or item_id in self.cut_items:
            return
        self.item_owner[item_id] = connection
        self.voice.play(item_id, pcm)
        self._set_speaking(True)

    def barge_in(self, connection: _Connection) -> None:
        """The user started speaking: silence AVA at once and tell the server what was heard."""
        if self.voice is None or connection is not self.active:
            return
        cut = self.voice.interrupt()
        self._set_speaking(False)
        if cut is None or not cut.item_id:
            return
        self.cut_items.add(cut.item_id)
        logger.info("barge-in: cut %s after %d ms", cut.item_id, cut.played_ms)
        owner = self.item_owner.get(cut.item_id, connection)
        owner.send_event(events.item_truncate(cut.item_id, cut.played_ms))

    def _set_speaking(self, active: bool) -> None:
        if active != self.speaking:
            self.speaking = active
            self.context.speaking(active)

    # -- tools ---------------------------------------------------------------------------------

    def start_tool(self, caller: _Connection, tools: ToolHost, name: str, arguments: str, call_id: str) -> None:
        """Run a tool for the conversation, not for one session: its answer survives a handover."""
        self.tool_tasks.append(asyncio.create_task(self._run_tool(caller, tools, name, arguments, call_id),
                                                   name=f"ava-tool-{name}"))

    @property
    def busy_with_tools(self) -> bool:
        return any(not task.done() for task in self.tool_tasks)

    async def _run_tool(self, caller: _Connection, tools: ToolHost, name: str, arguments: str,
                        call_id: str) -> None:
        output = await tools.call(name, arguments, call_id)
        self.owner.transcript.add("tool", f"{name}({arguments}) -> {output}")
        target = self.active if self.active is not None else caller
        if target is not caller:
            # The call came from a session that has since been handed over: give the new one the call first.
            target.send_event(events.function_call_item(call_id, name, arguments))
        target.send_event(events.function_call_output(call_id, output))
        target.send_event(events.response_create())

    async def cleanup(self) -> None:
        """Close every session and the audio; safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        for task in self.retiring + self.tool_tasks:
            task.cancel()
        await asyncio.gather(*self.retiring, *self.tool_tasks, return_exceptions=True)
        await asyncio.gather(*(c.close("client closing") for c in self.connections), return_exceptions=True)
        if self.voice is not None:
            try:
                await self.voice.close()
            except Exception as exc:  # closing must never stop the rest of the cleanup
                logger.warning("closing audio failed: %s", exc)
        if self.speaking:
            self._set_speaking(False)


class _Connection:
    """One server session: its socket, its pumps and what it has said."""

    def __init__(self, conversation: _Conversation) -> None:
        self.conversation = conversation
        self.owner = conversation.owner
        self.ws: ClientConnection | None = None
        self.error_codes: list[str] = []
        self.created_at = self.owner.clock.wall()
        self.expires_at: float | None = None
        self.outbox: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.response_active = False
        self.user_speaking = False
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self.pumps: list[asyncio.Task[None]] = []
        self.closing: asyncio.Task[None] | None = None
        self.closed = False
        self.main: asyncio.Task[SessionEnding] = asyncio.create_task(self._main(), name="ava-session")

    async def wait_ready(self) -> SessionEnding | None:
        """None once configured; else how the session ended before it was ready."""
        waiting: set[asyncio.Future[Any]] = {self.ready, self.main}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self.ready.done():
            return None
        return self.main.result()

    async def response_finished(self) -> None:
        await self._response_idle.wait()

    async def _main(self) -> SessionEnding:
        try:
            self.ws = await open_connection(self.owner.options.url, self.owner.options.api_key,
                                            self.owner.options.keepalive)
            async with asyncio.timeout(SESSION_READY_TIMEOUT):
                await self._configure()
            self.pumps = [asyncio.create_task(self._receive(), name="ava-session-receive"),
                          asyncio.create_task(self._send_outbox(), name="ava-session-send")]
            done, _ = await asyncio.wait(self.pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            return classify_ending(close_code=self.ws.close_code, close_reason=self.ws.close_reason or "",
                                   error_codes=self.error_codes)
        except ConnectionClosed as exc:
            return classify_ending(exception=exc, error_codes=self.error_codes)
        except SessionAborted as exc:
            return exc.ending
        except TimeoutError:
            if self.ws is None:
                return SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server did not answer in time",
                                     unreachable=True)
            return SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server did not start a session in time")
        except Exception as exc:
            ws = self.ws
            return classify_ending(exception=exc, error_codes=self.error_codes,
                                   close_code=ws.close_code if ws else None,
                                   close_reason=(ws.close_reason or "") if ws else "")
        finally:
            await self._stop_pumps()

    async def _configure(self) -> None:
        """`session.created` → `session.update` (+ the conversation so far) → wait for `session.updated`."""
        assert self.ws is not None
        while True:
            event = self._parse(await self.ws.recv())
            if event is None:
                continue
            if event["type"] == "session.created":
                self.created_at = self.owner.clock.wall()
                session = event.get("session")
                if isinstance(session, dict) and isinstance(session.get("expires_at"), (int, float)):
                    self.expires_at = float(session["expires_at"])
                break
            self._dispatch(event)
        await self.ws.send(events.encode(events.session_update(self._session_config())))
        replay = self.owner.transcript.replay_item()
        if replay is not None:
            await self.ws.send(events.encode(replay))
        while not self.ready.done():
            event = self._parse(await self.ws.recv())
            if event is not None:
                self._dispatch(event)

    def _session_config(self) -> events.SessionConfig:
        config = self.owner.options.config
        tools = self.owner.tools
        if tools is None:
            return config
        return replace(config, tools=config.tools + tools.specs(),
                       instructions=config.instructions + tools.instructions_suffix())

    # -- sending -------------------------------------------------------------------------------

    def send_mic(self, pcm: bytes, captured_at: float) -> None:
        if not self.closed:
            self.outbox.put_nowait((events.encode(events.input_audio_append(pcm)), captured_at))

    def send_event(self, event: dict[str, Any]) -> None:
        if not self.closed:
            self.outbox.put_nowait((events.encode(event), None))

    async def _send_outbox(self) -> None:
        assert self.ws is not None
        latency = self.owner.latency
        while True:
            message, captured_at = await self.outbox.get()
            await self.ws.send(message)
            if captured_at is not None:
                latency.mic_to_socket.add((time.monotonic() - captured_at) * 1000.0)

    # -- receiving -----------------------------------------------------------------------------

    async def _receive(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            received_at = time.monotonic()
            event = self._parse(message)
            if event is not None:
                self._dispatch(event, received_at)

    def _parse(self, message: str | bytes) -> dict[str, Any] | None:
        try:
            return events.decode(message)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed server event: %s", exc)
            return None

    def _dispatch(self, event: dict[str, Any], received_at: float | None = None) -> None:
        kind = event["type"]
        conversation = self.conversation
        if kind == "response.output_audio.delta":
            self._on_audio_delta(event, received_at)
        elif kind == "session.updated":
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "input_audio_buffer.speech_started":
            self.user_speaking = True
            conversation.barge_in(self)
        elif kind in ("input_audio_buffer.speech_stopped", "input_audio_buffer.timeout_triggered"):
            self.user_speaking = False
        elif kind == "response.created":
            self.response_active = True
            self._response_idle.clear()
        elif kind == "response.done":
            self.response_active = False
            self._response_idle.set()
        elif kind == "error":
            self._on_error(event)
        elif kind == "response.function_call_arguments.done":
            self._on_function_call(event)
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._heard("user", str(event.get("transcript", "")))
        elif kind == "response.output_audio_transcript.done":
            self._heard("assistant", str(event.get("transcript", "")))
        elif kind in _KNOWN_QUIET_EVENTS:
            logger.debug("server event %s", kind)
        else:
            logger.debug("ignored unknown server event %s", kind)

    def _heard(self, role: str, text: str) -> None:
        self.owner.transcript.add(role, text)
        self.conversation.context.transcript(role, text)

    def _on_audio_delta(self, event: dict[str, Any], received_at: float | None) -> None:
        try:
            pcm = events.audio_delta_pcm(event)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed audio delta: %s", exc)
            return
        self.conversation.play(self, str(event.get("item_id", "")), pcm)
        if received_at is not None:
            self.owner.latency.socket_to_device.add((time.monotonic() - received_at) * 1000.0)

    def _on_error(self, event: dict[str, Any]) -> None:
        code = events.error_code(event)
        logger.warning("server error %s: %s", code, events.error_message(event))
        if not code:
            return
        self.error_codes.append(code)
        if code in FATAL_ERROR_CODES and self.ws is not None and self.closing is None:
            self.closing = asyncio.create_task(self.ws.close(), name="ava-session-close-fatal")

    def _on_function_call(self, event: dict[str, Any]) -> None:
        """Run the tool off the receive loop; its output goes back with a `response.create`."""
        tools = self.owner.tools
        call_id, name = str(event.get("call_id", "")), str(event.get("name", ""))
        if tools is None or not call_id:
            logger.warning("ignored a function call %r with no tool host or call id", name)
            return
        self.conversation.start_tool(self, tools, name, str(event.get("arguments", "")), call_id)

    # -- ending --------------------------------------------------------------------------------

    async def _stop_pumps(self) -> None:
        tasks = [t for t in [*self.pumps, self.closing] if t is not None and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(1000, "client closing")

    async def close(self, reason: str) -> None:
        """Close this session with 1000 and wait until all of its tasks are done; idempotent."""
        self.closed = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(1000, reason)
        if not self.main.done():
            self.main.cancel()
        await asyncio.wait({self.main})
        self._response_idle.set()


_KNOWN_QUIET_EVENTS = frozenset({
    "session.created", "input_audio_buffer.committed",
    "input_audio_buffer.cleared", "conversation.item.added",
    "conversation.item.done", "conversation.item.created", "conversation.item.truncated",
    "conversation.item.deleted", "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.failed",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_text.delta", "response.output_text.done", "response.function_call_arguments.delta",
    "rate_limits.updated",
})
