"""One Realtime session: configure it, pump audio both ways, dispatch server events, end cleanly.

A session knows nothing of reconnecting: it runs until the socket closes, the server refuses it or
its audio fails, and returns a `SessionEnding` that says why. Its cleanup is one idempotent path that
every exit takes: audio streams closed, tasks cancelled and awaited, socket closed.
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
from ava_tray.metrics import AudioLatency
from ava_tray.realtime import events
from ava_tray.realtime.connection import Keepalive, open_connection
from ava_tray.realtime.ending import Cause, SessionAborted, SessionEnding, classify_ending
from ava_tray.supervisor import SessionContext

logger = logging.getLogger(__name__)

SESSION_CREATED_TIMEOUT = 10.0


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
class SessionOptions:
    """Everything one session needs that does not change between sessions."""

    url: str
    api_key: str | None
    config: events.SessionConfig
    keepalive: Keepalive = field(default_factory=Keepalive)


class RealtimeSession:
    """Runs one session to its end; `run` is a `SessionRunner` for the supervisor."""

    def __init__(
        self,
        options: SessionOptions,
        voice_io_factory: Callable[[], VoiceIO],
        *,
        clock: Clock | None = None,
        latency: AudioLatency | None = None,
        tools: ToolHost | None = None,
    ) -> None:
        self._options = options
        self.tools = tools
        self._voice_io_factory = voice_io_factory
        self._clock = clock or SystemClock()
        self.latency = latency or AudioLatency()
        self.sessions_configured = 0

    async def run(self, context: SessionContext) -> SessionEnding:
        """Open, configure and serve one session; return why it ended."""
        run = _SessionRun(self, context)
        return await run.serve()


class _SessionRun:
    """The state of one running session."""

    def __init__(self, owner: RealtimeSession, context: SessionContext) -> None:
        self.owner = owner
        self.context = context
        self.options = owner._options
        self.latency = owner.latency
        self.ws: ClientConnection | None = None
        self.voice: VoiceIO | None = None
        self.error_codes: list[str] = []
        self.expires_at: float | None = None
        self.outbox: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.fatal_seen = asyncio.Event()
        self.speaking = False
        self.configured = False
        self.closed = False

    async def serve(self) -> SessionEnding:
        try:
            self.ws = await open_connection(self.options.url, self.options.api_key, self.options.keepalive)
            await self._configure()
            await self._open_audio()
            receiver = asyncio.create_task(self._receive(), name="ava-session-receive")
            pumps = [
                receiver,
                asyncio.create_task(self._send_outbox(), name="ava-session-send"),
                asyncio.create_task(self._watch_audio(), name="ava-session-audio-watch"),
            ]
            self.tasks += pumps
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
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
        except AudioDeviceError as exc:
            return SessionEnding(Cause.OTHER, str(exc))
        except Exception as exc:
            ws = self.ws
            return classify_ending(exception=exc, error_codes=self.error_codes,
                                   close_code=ws.close_code if ws else None,
                                   close_reason=(ws.close_reason or "") if ws else "")
        finally:
            await self.cleanup()

    async def _configure(self) -> None:
        """Wait for `session.created`, then send the GA `session.update`."""
        assert self.ws is not None
        try:
            async with asyncio.timeout(SESSION_CREATED_TIMEOUT):
                while True:
                    event = self._parse(await self.ws.recv())
                    if event is None:
                        continue
                    if event["type"] == "session.created":
                        session = event.get("session")
                        if isinstance(session, dict) and isinstance(session.get("expires_at"), (int, float)):
                            self.expires_at = float(session["expires_at"])
                        break
                    self._dispatch(event)
                    if self.fatal_seen.is_set():
                        await self.ws.close()
        except TimeoutError as exc:
            raise SessionAborted(SessionEnding(
                Cause.CONNECTION_LOST, "Connection lost: the server did not start a session in time")) from exc
        await self._send(events.session_update(self._session_config()))

    def _session_config(self) -> events.SessionConfig:
        config = self.options.config
        tools = self.owner.tools
        if tools is None:
            return config
        return replace(config, tools=config.tools + tools.specs(),
                       instructions=config.instructions + tools.instructions_suffix())

    async def _open_audio(self) -> None:
        self.voice = self.owner._voice_io_factory()
        await self.voice.open(self._on_mic_block)

    def _on_mic_block(self, pcm: bytes, captured_at: float) -> None:
        """On the loop: queue one microphone block for the socket."""
        if not self.closed:
            self.outbox.put_nowait((events.encode(events.input_audio_append(pcm)), captured_at))

    async def _send_outbox(self) -> None:
        assert self.ws is not None
        while True:
            message, captured_at = await self.outbox.get()
            await self.ws.send(message)
            if captured_at is not None:
                self.latency.mic_to_socket.add((time.monotonic() - captured_at) * 1000.0)

    async def _send(self, event: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(events.encode(event))

    def _send_soon(self, event: dict[str, Any]) -> None:
        self.outbox.put_nowait((events.encode(event), None))

    async def _watch_audio(self) -> None:
        """End the session if a device fails while running; track whether AVA is still speaking."""
        while True:
            await asyncio.sleep(0.2)
            voice = self.voice
            if voice is None:
                continue
            if voice.failure is not None:
                logger.warning("audio failed: %s", voice.failure)
                if self.ws is not None:
                    await self.ws.close(1000, "audio device failed")
                raise SessionAborted(SessionEnding(Cause.OTHER, str(voice.failure)))
            if self.speaking and not voice.is_playing:
                self._set_speaking(False)

    async def _receive(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            received_at = time.monotonic()
            event = self._parse(message)
            if event is None:
                continue
            self._dispatch(event, received_at)
            if self.fatal_seen.is_set():
                await self.ws.close()

    def _parse(self, message: str | bytes) -> dict[str, Any] | None:
        try:
            return events.decode(message)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed server event: %s", exc)
            return None

    def _dispatch(self, event: dict[str, Any], received_at: float | None = None) -> None:
        kind = event["type"]
        if kind == "session.updated":
            if not self.configured:
                self.configured = True
                self.owner.sessions_configured += 1
                self.context.ready(self.expires_at)
        elif kind == "response.output_audio.delta":
            self._on_audio_delta(event, received_at)
        elif kind == "input_audio_buffer.speech_started":
            self._on_barge_in()
        elif kind == "error":
            self._on_error(event)
        elif kind == "response.function_call_arguments.done":
            self._on_function_call(event)
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.context.transcript("user", str(event.get("transcript", "")))
        elif kind == "response.output_audio_transcript.done":
            self.context.transcript("assistant", str(event.get("transcript", "")))
        elif kind in _KNOWN_QUIET_EVENTS:
            logger.debug("server event %s", kind)
        else:
            logger.debug("ignored unknown server event %s", kind)

    def _on_audio_delta(self, event: dict[str, Any], received_at: float | None) -> None:
        try:
            pcm = events.audio_delta_pcm(event)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed audio delta: %s", exc)
            return
        if self.voice is None:
            return
        self.voice.play(str(event.get("item_id", "")), pcm)
        if received_at is not None:
            self.latency.socket_to_device.add((time.monotonic() - received_at) * 1000.0)
        self._set_speaking(True)

    def _on_barge_in(self) -> None:
        """The user started speaking: silence AVA at once and tell the server what was heard."""
        if self.voice is None:
            return
        cut = self.voice.interrupt()
        self._set_speaking(False)
        if cut is not None and cut.item_id:
            logger.info("barge-in: cut %s after %d ms", cut.item_id, cut.played_ms)
            self._send_soon(events.item_truncate(cut.item_id, cut.played_ms))

    def _on_error(self, event: dict[str, Any]) -> None:
        code = events.error_code(event)
        logger.warning("server error %s: %s", code, events.error_message(event))
        if code:
            self.error_codes.append(code)
            ending = classify_ending(error_codes=[code])
            if ending.cause is Cause.FATAL:
                self.fatal_seen.set()

    def _on_function_call(self, event: dict[str, Any]) -> None:
        """Run the tool off the receive loop; its output goes back with a `response.create`."""
        tools = self.owner.tools
        call_id, name = str(event.get("call_id", "")), str(event.get("name", ""))
        if tools is None or not call_id:
            logger.warning("ignored a function call %r with no tool host or call id", name)
            return
        self.tasks.append(asyncio.create_task(self._run_tool(tools, name, str(event.get("arguments", "")), call_id),
                                              name=f"ava-tool-{name}"))

    async def _run_tool(self, tools: ToolHost, name: str, arguments: str, call_id: str) -> None:
        output = await tools.call(name, arguments, call_id)
        if not self.closed:
            self._send_soon(events.function_call_output(call_id, output))
            self._send_soon(events.response_create())

    def _set_speaking(self, active: bool) -> None:
        if active != self.speaking:
            self.speaking = active
            self.context.speaking(active)

    async def cleanup(self) -> None:
        """Close audio, cancel and await tasks, close the socket; safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.voice is not None:
            try:
                await self.voice.close()
            except Exception as exc:  # closing must never stop the rest of the cleanup
                logger.warning("closing audio failed: %s", exc)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(1000, "client closing")
        if self.speaking:
            self._set_speaking(False)


_KNOWN_QUIET_EVENTS = frozenset({
    "session.created", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "input_audio_buffer.cleared", "input_audio_buffer.timeout_triggered", "conversation.item.added",
    "conversation.item.done", "conversation.item.created", "conversation.item.truncated",
    "conversation.item.deleted", "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.failed", "response.created", "response.done",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_text.delta", "response.output_text.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "rate_limits.updated",
})
