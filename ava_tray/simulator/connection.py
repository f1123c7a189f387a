"""One accepted WebSocket on the simulator: the GA event subset, turn taking, replies and staged faults."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ava_tray.realtime.events import SAMPLE_RATE
from ava_tray.realtime.events import pcm_duration_ms as pcm_ms
from ava_tray.simulator.faults import Fault
from ava_tray.simulator.voice import SpeechStarted, SpeechStopped, TurnDetector, ms_bytes, synthetic_voice

if TYPE_CHECKING:
    from ava_tray.simulator.server import RealtimeSimulator

logger = logging.getLogger(__name__)

Event = dict[str, Any]

DEFAULT_REPLY_SECONDS = 1.5
CHUNK_MS = 100
MIN_COMMIT_MS = 100
SILENT_POLL_SECONDS = 0.1
SYNTHETIC_TRANSCRIPT = "Hello, this is the AVA simulator speaking."
PCM_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}


@dataclass
class SimulatedSession:
    """What one accepted connection did and saw; tests read these."""

    id: str
    opened_at: float
    """`time.monotonic()` at accept."""
    expires_at: float
    """Unix seconds, as sent in `session.created`."""
    closed_at: float | None = None
    close_code: int | None = None
    """The code the server closed with, or the one it observed (1006: no close frame)."""
    close_reason: str = ""
    authorization: str | None = field(default=None, repr=False)
    """The `Authorization` header as received; never logged."""
    session_updates: list[Event] = field(default_factory=list)
    client_events: list[Event] = field(default_factory=list)
    received_audio_ms: float = 0.0
    audio_arrivals: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic arrival time, ms of audio in that append), for gap analysis."""
    replies_sent: int = 0
    """Responses that ended with `response.done` status completed (audio and function-call replies)."""
    replies_cancelled: int = 0
    speech_started: int = 0
    truncates: list[Event] = field(default_factory=list)
    function_calls: list[Event] = field(default_factory=list)
    """Function calls the server made: {call_id, name, arguments (dict)}."""
    function_outputs: list[Event] = field(default_factory=list)
    """`function_call_output` items the client created."""
    errors_sent: list[str] = field(default_factory=list)
    """The `error.code` of every error event sent."""
    faults: list[Fault] = field(default_factory=list)
    """Faults applied to this session, in order."""

    @property
    def open(self) -> bool:
        return self.closed_at is None


class _Stopped(Exception):
    """Internal: the session sends nothing more (it is ending, or it went half-open)."""


@dataclass
class _Reply:
    """The response being sent right now."""

    response_id: str
    item_id: str
    kind: str  # "audio" or "function_call"
    task: asyncio.Task[None] | None = None
    completing: bool = False  # the final events are going out: too late to cancel
    audio_ms: float = 0.0
    item: Event = field(default_factory=dict)


def expiry_reason(limit_seconds: float) -> str:
    """OpenAI's close reason at the session limit: `... of 60 minutes.`, or seconds when not whole minutes."""
    if limit_seconds >= 60 and float(limit_seconds) % 60 == 0:
        count, unit = f"{int(limit_seconds // 60)}", "minute"
    else:
        count, unit = f"{limit_seconds:g}", "second"
    plural = "" if count == "1" else "s"
    return f"Your session hit the maximum duration of {count} {unit}{plural}."


def error_event(code: str, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                event_id: str | None = None) -> Event:
    """A GA `error` server event."""
    return {"type": "error",
            "error": {"type": type_, "code": code, "message": message, "param": param, "event_id": event_id}}


def _merge(base: Event, update: Event) -> Event:
    """Deep-merge `update` into a copy of `base` (dicts merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class SimulatedConnection:
    """Runs one session on one WebSocket until it ends; every exit takes `_finish`."""

    def __init__(self, simulator: RealtimeSimulator, websocket: ServerConnection, session: SimulatedSession) -> None:
        self._sim = simulator
        self._ws = websocket
        self.session = session
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_task: asyncio.Task[None] | None = None
        self._ready = False  # session.created sent
        self._closing = False
        self._silent = False
        self._reply: _Reply | None = None
        self._detector = TurnDetector(simulator.speech_threshold, simulator.silence_ms)
        self._create_response = True
        self._interrupt_response = True
        self._audio_sent = False
        self._user_item_id: str | None = None
        self._pending_turn_pcm: bytes | None = None
        self._items: dict[str, Event] = {}
        self._audio_items: dict[str, float] = {}  # assistant audio item id -> ms sent
        self._model = self._model_from_path()
        self._config = self._default_config()
        self.done = asyncio.Event()

    # -- state seen by the simulator ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Open for events and faults: `session.created` sent, not ending, not silent."""
        return self._ready and not self._closing and not self._silent

    @property
    def idle(self) -> bool:
        return self.ready and self._reply is None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until the socket closes."""
        try:
            if self._admitted():
                await self._send(self._session_event("session.created"))
                self._ready = True
                self._sim._session_ready(self)
                self._spawn(self._expire_at_limit())
                await self._read_loop()
        except (ConnectionClosed, _Stopped):
            pass
        except Exception:
            logger.exception("simulated session %s failed", self.session.id)
            self._end(1011, "internal error")
        finally:
            if self._silent:
                await self._ws.wait_closed()  # until the peer leaves or the simulator stops
            await self._finish()

    def shut_down(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """End the session from outside (simulator stop)."""
        self._end(code, reason)

    async def _finish(self) -> None:
        self._closing = True
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._close_task is not None:
            await asyncio.gather(self._close_task, return_exceptions=True)
        if self.session.close_code is None:
            self.session.close_code = self._ws.close_code if self._ws.close_code is not None else 1006
            self.session.close_reason = self._ws.close_reason or ""
        self.session.closed_at = time.monotonic()
        logger.info("simulated session %s closed (%s %s)", self.session.id, self.session.close_code,
                    self.session.close_reason or "-")
        self.done.set()
        self._sim._changed()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _end(self, code: int, reason: str, error: Event | None = None) -> None:
        """Close the session with `code` (after sending `error`, if any); a silent one is aborted."""
        if self._closing:
            return
        self._closing = True
        self._stop_reply()
        if self._silent:
            self._abort(1006)
            return
        self.session.close_code, self.session.close_reason = code, reason
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason, error))
        self._sim._changed()

    async def _close(self, code: int, reason: str, error: Event | None) -> None:
        with contextlib.suppress(ConnectionClosed, _Stopped):
            if error is not None:
                await self._send(error, force=True)
            await self._ws.close(code, reason)

    def _abort(self, code: int = 1006) -> None:
        self._closing = True
        self._stop_reply()
        if self.session.close_code is None:
            self.session.close_code = code
        self._ws.transport.abort()
        self._sim._changed()

    # -- admission and faults -----------------------------------------------------------------

    def _admitted(self) -> bool:
        headers = self._ws.request.headers if self._ws.request is not None else None
        expected = self._sim.api_key
        if expected is not None:
            given = self.session.authorization or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
                logger.info("simulated session %s: wrong or missing API key", self.session.id)
                self._end(3000, "invalid_request_error.invalid_api_key")
                return False
        if headers is not None and "OpenAI-Beta" in headers:
            self._apply_beta_refusal()
            return False
        return True

    def _apply_beta_refusal(self) -> None:
        self._end(4000, "invalid_request_error.beta_api_shape_disabled", error_event(
            "beta_api_shape_disabled",
            "The Realtime beta API shape is disabled: use the GA interface without the OpenAI-Beta header."))

    def apply_fault(self, fault: Fault, count: int = 1) -> None:
        """Stage `fault` on this session now (`count` frames for the non-fatal ones)."""
        if not self.ready:
            return
        logger.info("simulated session %s: fault %s", self.session.id, fault.value)
        self.session.faults.append(fault)
        if fault is Fault.DROP:
            self._abort(1006)
        elif fault is Fault.CLOSE_1011:
            self._end(1011, "internal error")
        elif fault is Fault.CLOSE_4000:
            self._apply_beta_refusal()
        elif fault is Fault.MALFORMED_JSON:
            self._spawn(self._send_raw_repeated('{"type": "response.output_audio.delta", "delta": ', count))
        elif fault is Fault.UNKNOWN_EVENT:
            self._spawn(self._send_repeated({"type": "future.unknown_event", "note": "a type from the future"},
                                            count))
        elif fault is Fault.HALF_OPEN:
            self._go_silent()
        elif fault is Fault.EXPIRE_NOW:
            self._expire()
        elif fault is Fault.ERROR_QUOTA:
            self._end(1000, "insufficient_quota", error_event(
                "insufficient_quota", "You exceeded your current quota, please check your plan and billing details.",
                type_="insufficient_quota"))
        self._sim._changed()

    async def _send_raw_repeated(self, text: str, count: int) -> None:
        for _ in range(count):
            await self._guard(self._ws.send(text))

    async def _send_repeated(self, event: Event, count: int) -> None:
        for _ in range(count):
            await self._guard(self._send(dict(event)))

    @staticmethod
    async def _guard(awaitable: Awaitable[None]) -> None:
        with contextlib.suppress(ConnectionClosed, _Stopped):
            await awaitable

    def _go_silent(self) -> None:
        """Half-open: read nothing, answer nothing, send nothing; abort once the peer gives up."""
        self._stop_reply()
        self._silent = True
        self._ws.transport.pause_reading()
        self._spawn(self._watch_silent_peer())

    async def _watch_silent_peer(self) -> None:
        """Drain the socket below the WebSocket layer (so no ping is answered) until the peer hangs up."""
        raw = self._ws.transport.get_extra_info("socket")
        if raw is None:
            return
        peer = socket.fromfd(raw.fileno(), raw.family, raw.type)
        try:
            peer.setblocking(False)
            while True:
                try:
                    data = peer.recv(65536)
                except BlockingIOError:
                    await asyncio.sleep(SILENT_POLL_SECONDS)
                    continue
                except OSError:
                    break
                if not data:
                    break
        finally:
            peer.close()
        logger.info("simulated session %s: the peer left the half-open socket", self.session.id)
        self._abort(1006)

    async def _expire_at_limit(self) -> None:
        await asyncio.sleep(max(0.0, self.session.opened_at + self._sim.session_limit - time.monotonic()))
        self._expire()

    def _expire(self) -> None:
        error = None
        if self._sim.expiry_error_first:
            error = error_event("session_expired", expiry_reason(self._sim.session_limit))
        logger.info("simulated session %s expires", self.session.id)
        self._end(1001, expiry_reason(self._sim.session_limit), error)

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, event: Event, *, force: bool = False) -> None:
        """Send one server event with a fresh `event_id`; nothing once silent, or once closing unless forced."""
        if self._silent or (self._closing and not force):
            raise _Stopped
        event.setdefault("event_id", self._sim._new_id("event"))
        if event["type"] == "error" and event["error"].get("code"):
            self.session.errors_sent.append(str(event["error"]["code"]))
        await self._ws.send(json.dumps(event, separators=(",", ":")))

    async def _error(self, code: str, message: str, *, param: str | None = None,
                     client_event: Event | None = None) -> None:
        event_id = client_event.get("event_id") if client_event else None
        await self._send(error_event(code, message, param=param,
                                     event_id=event_id if isinstance(event_id, str) else None))

    # -- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }
        async for message in self._ws:
            if self._silent:
                self._ws.transport.pause_reading()  # taking a message may have resumed it
                break
            try:
                event = json.loads(message)
            except (ValueError, UnicodeDecodeError):
                await self._error("invalid_json", "The client event is not valid JSON.")
                continue
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                await self._error("invalid_json", "A client event must be a JSON object with a string `type`.")
                continue
            self._record(event)
            handler = handlers.get(event["type"])
            if handler is None:
                await self._error("unknown_event", f"Unknown client event type {event['type']!r}.",
                                  param="type", client_event=event)
            else:
                await handler(event)
            self._sim._changed()

    def _record(self, event: Event) -> None:
        if not self._sim.record_audio and event["type"] == "input_audio_buffer.append":
            audio = event.get("audio")
            event = dict(event, audio=f"<{len(audio) if isinstance(audio, str) else 0} base64 chars>")
        self.session.client_events.append(event)

    # -- session ------------------------------------------------------------------------------

    def _model_from_path(self) -> str:
        path = self._ws.request.path if self._ws.request is not None else ""
        models = parse_qs(urlsplit(path).query).get("model")
        return models[0] if models else "gpt-realtime"

    def _default_config(self) -> Event:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.session.id,
            "model": self._model,
            "expires_at": int(self.session.expires_at),
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "prompt": None,
            "truncation": "auto",
            "include": None,
            "audio": {
                "input": {
                    "format": dict(PCM_FORMAT),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": self._sim.silence_ms,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": dict(PCM_FORMAT), "voice": "marin", "speed": 1.0},
            },
        }

    def _session_event(self, type_: str) -> Event:
        return {"type": type_, "session": copy.deepcopy(self._config)}

    async def _on_session_update(self, event: Event) -> None:
        session = event.get("session")
        if not isinstance(session, dict) or session.get("type") != "realtime":
            await self._error("invalid_value", "session.update needs the GA shape: a `session` object with "
                              "`type: \"realtime\"`.", param="session.type", client_event=event)
            return
        audio = session.get("audio")
        if not isinstance(audio, dict):
            audio = {}
        for direction in ("input", "output"):
            part = audio.get(direction)
            fmt = part.get("format") if isinstance(part, dict) else None
            if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "audio/pcm"
                                    or fmt.get("rate", SAMPLE_RATE) != SAMPLE_RATE):
                await self._error("invalid_value", "The simulator speaks only audio/pcm at 24000 Hz.",
                                  param=f"session.audio.{direction}.format", client_event=event)
                return
        output = audio.get("output")
        voice = output.get("voice") if isinstance(output, dict) else None
        if voice is not None and self._audio_sent and voice != self._config["audio"]["output"]["voice"]:
            await self._error("cannot_update_voice", "The voice cannot change once the session has produced "
                              "audio.", param="session.audio.output.voice", client_event=event)
            return
        self.session.session_updates.append(event)
        self._config = _merge(self._config, {k: v for k, v in session.items() if k not in ("id", "expires_at")})
        turn_detection = self._config["audio"]["input"].get("turn_detection")
        self._detector.enabled = isinstance(turn_detection, dict)
        if isinstance(turn_detection, dict):
            self._create_response = bool(turn_detection.get("create_response", True))
            self._interrupt_response = bool(turn_detection.get("interrupt_response", True))
        await self._send(self._session_event("session.updated"))
        await self._send({"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
            {"name": "tokens", "limit": 200000, "remaining": 199500, "reset_seconds": 0.15}]})

    # -- input audio --------------------------------------------------------------------------

    async def _on_append(self, event: Event) -> None:
        audio = event.get("audio")
        try:
            if not isinstance(audio, str):
                raise ValueError
            pcm = base64.b64decode(audio, validate=True)
        except (ValueError, binascii.Error):
            await self._error("invalid_value", "`audio` must be base64-encoded PCM16.", param="audio",
                              client_event=event)
            return
        ms = pcm_ms(len(pcm))
        self.session.received_audio_ms += ms
        self.session.audio_arrivals.append((time.monotonic(), ms))
        for turn in self._detector.feed(pcm):
            if isinstance(turn, SpeechStarted):
                await self._on_speech_started(turn)
            else:
                await self._on_speech_stopped(turn)

    async def _on_speech_started(self, turn: SpeechStarted) -> None:
        self._user_item_id = self._sim._new_id("item")
        self.session.speech_started += 1
        await self._send({"type": "input_audio_buffer.speech_started", "audio_start_ms": turn.audio_start_ms,
                          "item_id": self._user_item_id})
        if self._interrupt_response and self._reply is not None:
            await self._cancel_reply("turn_detected")

    async def _on_speech_stopped(self, turn: SpeechStopped) -> None:
        item_id = self._user_item_id or self._sim._new_id("item")
        self._user_item_id = None
        await self._send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": turn.audio_end_ms,
                          "item_id": item_id})
        await self._user_turn(item_id, turn.pcm)
        if self._create_response:
            if self._reply is None:
                self._start_reply(turn.pcm)
            else:
                logger.debug("simulated session %s: a reply is still running; no new one", self.session.id)

    async def _user_turn(self, item_id: str, pcm: bytes) -> None:
        """Commit a user audio turn: committed, the item, its transcription."""
        previous = next(reversed(self._items), None)
        await self._send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        transcript = f"({pcm_ms(len(pcm)) / 1000:.1f} s of speech)"
        item: Event = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                       "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self._items[item_id] = item
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        await self._send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                          "content_index": 0, "transcript": transcript,
                          "usage": {"type": "duration", "seconds": round(pcm_ms(len(pcm)) / 1000, 3)}})

    async def _on_commit(self, event: Event) -> None:
        if self._detector.buffered_ms < MIN_COMMIT_MS:
            await self._error("input_audio_buffer_commit_empty",
                              f"Error committing input audio buffer: buffer too small. Expected at least "
                              f"{MIN_COMMIT_MS}ms of audio, but buffer only has "
                              f"{self._detector.buffered_ms:.2f}ms of audio.", client_event=event)
            return
        pcm = self._detector.commit()
        item_id = self._user_item_id or self._sim._new_id("item")
        self._user_item_id = None
        self._pending_turn_pcm = pcm
        await self._user_turn(item_id, pcm)

    async def _on_clear(self, event: Event) -> None:
        self._detector.clear()
        self._user_item_id = None
        await self._send({"type": "input_audio_buffer.cleared"})

    # -- conversation items -------------------------------------------------------------------

    async def _on_item_create(self, event: Event) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in ("message", "function_call",
                                                                   "function_call_output"):
            await self._error("invalid_value", "`item` must be a message, function_call or function_call_output.",
                              param="item.type", client_event=event)
            return
        if item["type"] == "function_call_output" and not any(
                known.get("type") == "function_call" and known.get("call_id") == item.get("call_id")
                for known in self._items.values()):
            # As OpenAI: an output must answer a function_call item of this session's conversation.
            await self._error("invalid_tool_call_id", f"Tool call ID {item.get('call_id')!r} not found in "
                              "conversation.", param="item.call_id", client_event=event)
            return
        item = copy.deepcopy(item)
        item.setdefault("id", self._sim._new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        previous = event.get("previous_item_id")
        if not isinstance(previous, str) or (previous != "root" and previous not in self._items):
            previous = next(reversed(self._items), None)
        elif previous == "root":
            previous = None
        self._items[item["id"]] = item
        if item["type"] == "function_call_output":
            self.session.function_outputs.append(item)
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _on_truncate(self, event: Event) -> None:
        self.session.truncates.append(event)
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        if not isinstance(item_id, str) or item_id not in self._audio_items:
            await self._error("invalid_value", f"No assistant audio item with id {item_id!r}.", param="item_id",
                              client_event=event)
            return
        if not isinstance(end_ms, int) or end_ms < 0 or end_ms > self._audio_items[item_id] + 1:
            await self._error("invalid_value", f"audio_end_ms {end_ms!r} is beyond the item's "
                              f"{self._audio_items[item_id]:.0f} ms of audio.", param="audio_end_ms",
                              client_event=event)
            return
        self._audio_items[item_id] = float(end_ms)
        await self._send({"type": "conversation.item.truncated", "item_id": item_id,
                          "content_index": event.get("content_index", 0), "audio_end_ms": end_ms})

    async def _on_item_delete(self, event: Event) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or self._items.pop(item_id, None) is None:
            await self._error("invalid_value", f"No item with id {item_id!r}.", param="item_id", client_event=event)
            return
        self._audio_items.pop(item_id, None)
        await self._send({"type": "conversation.item.deleted", "item_id": item_id})

    async def _on_item_retrieve(self, event: Event) -> None:
        item_id = event.get("item_id")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            await self._error("invalid_value", f"No item with id {item_id!r}.", param="item_id", client_event=event)
            return
        await self._send({"type": "conversation.item.retrieved", "item": item})

    # -- responses ----------------------------------------------------------------------------

    async def _on_response_create(self, event: Event) -> None:
        if self._reply is not None:
            await self._error("conversation_already_has_active_response", "Conversation already has an active "
                              f"response in progress: {self._reply.response_id}.", client_event=event)
            return
        pcm, self._pending_turn_pcm = self._pending_turn_pcm, None
        self._start_reply(pcm)

    async def _on_response_cancel(self, event: Event) -> None:
        wanted = event.get("response_id")
        if self._reply is None or (isinstance(wanted, str) and wanted != self._reply.response_id):
            await self._error("response_cancel_not_active", "Cancellation failed: no active response found.",
                              client_event=event)
            return
        await self._cancel_reply("client_cancelled")

    def start_function_call(self, name: str, arguments: Event) -> bool:
        """Send a function call now if the session is idle; False if it is not."""
        if not self.idle:
            return False
        self._begin_reply("function_call", lambda reply: self._send_function_call(reply, name, arguments))
        return True

    def start_audio_reply(self, seconds: float) -> bool:
        """Send an unsolicited synthetic-voice reply of `seconds` now if the session is idle; False if not."""
        if not self.idle:
            return False
        audio = synthetic_voice(seconds)
        self._begin_reply("audio", lambda reply: self._send_audio_reply(reply, audio, SYNTHETIC_TRANSCRIPT))
        return True

    def _start_reply(self, pcm: bytes | None) -> None:
        """Reply to a turn: a requested function call if one is queued, else audio."""
        call = self._sim._take_function_call()
        if call is not None:
            name, arguments = call
            self._begin_reply("function_call", lambda reply: self._send_function_call(reply, name, arguments))
            return
        if self._sim.reply_seconds is not None or not pcm:
            seconds = self._sim.reply_seconds if self._sim.reply_seconds is not None else DEFAULT_REPLY_SECONDS
            audio, transcript = synthetic_voice(seconds), SYNTHETIC_TRANSCRIPT
        else:
            audio, transcript = pcm, f"You said something for {pcm_ms(len(pcm)) / 1000:.1f} seconds."
        self._begin_reply("audio", lambda reply: self._send_audio_reply(reply, audio, transcript))

    def _begin_reply(self, kind: str, body: Callable[[_Reply], Coroutine[Any, Any, None]]) -> None:
        reply = _Reply(self._sim._new_id("resp"), self._sim._new_id("item"), kind)
        self._reply = reply
        reply.task = self._spawn(self._run_reply(reply, body))

    async def _run_reply(self, reply: _Reply, body: Callable[[_Reply], Coroutine[Any, Any, None]]) -> None:
        try:
            await body(reply)
        except (ConnectionClosed, _Stopped):
            pass
        finally:
            if self._reply is reply:
                self._reply = None
            self._sim._changed()

    def _stop_reply(self) -> None:
        """Stop sending the current reply without a `response.done` (the session is ending)."""
        reply, self._reply = self._reply, None
        if reply is not None and reply.task is not None:
            reply.task.cancel()

    async def _cancel_reply(self, reason: str) -> None:
        """Stop the current reply and say so with `response.done` status cancelled."""
        reply = self._reply
        if reply is None or reply.task is None or reply.completing:
            return
        reply.task.cancel()
        await asyncio.gather(reply.task, return_exceptions=True)
        if not reply.task.cancelled():
            return  # it finished on its own just before
        self.session.replies_cancelled += 1
        item = dict(reply.item, status="incomplete") if reply.item else None
        await self._send({"type": "response.done", "response": self._response(
            reply, "cancelled", [item] if item else [], {"type": "cancelled", "reason": reason})})

    def _response(self, reply: _Reply, status: str, output: list[Event],
                  status_details: Event | None = None) -> Event:
        audio_tokens = int(reply.audio_ms / 50)
        return {
            "id": reply.response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": status_details,
            "output": output,
            "conversation_id": "conv_simulator",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": dict(PCM_FORMAT), "voice": self._config["audio"]["output"]["voice"]}},
            "usage": None if status == "in_progress" else {
                "total_tokens": 20 + audio_tokens, "input_tokens": 10, "output_tokens": 10 + audio_tokens,
                "input_token_details": {"text_tokens": 5, "audio_tokens": 5, "cached_tokens": 0},
                "output_token_details": {"text_tokens": 10, "audio_tokens": audio_tokens},
            },
            "metadata": None,
        }

    async def _response_start(self, reply: _Reply, item: Event) -> None:
        reply.item = item
        await self._send({"type": "response.created", "response": self._response(reply, "in_progress", [])})
        await self._send({"type": "response.output_item.added", "response_id": reply.response_id,
                          "output_index": 0, "item": item})
        previous = next(reversed(self._items), None)
        self._items[item["id"]] = item
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})

    async def _response_finish(self, reply: _Reply, item: Event) -> None:
        reply.item = item
        reply.completing = True
        self._items[item["id"]] = item
        await self._send({"type": "response.output_item.done", "response_id": reply.response_id,
                          "output_index": 0, "item": item})
        await self._send({"type": "conversation.item.done", "item": item})
        await self._send({"type": "response.done", "response": self._response(reply, "completed", [item])})
        self.session.replies_sent += 1

    async def _send_audio_reply(self, reply: _Reply, audio: bytes, transcript: str) -> None:
        item: Event = {"id": reply.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                       "status": "in_progress", "content": []}
        await self._response_start(reply, item)
        where = {"response_id": reply.response_id, "item_id": reply.item_id, "output_index": 0, "content_index": 0}
        await self._send({"type": "response.content_part.added", **where,
                          "part": {"type": "audio", "transcript": ""}})
        self._audio_sent = True
        self._audio_items[reply.item_id] = 0.0
        words = transcript.split(" ")
        chunk = ms_bytes(CHUNK_MS)
        loop = asyncio.get_running_loop()
        started = loop.time()
        pace = CHUNK_MS / 1000 / max(self._sim.reply_speed, 0.01)
        for index, offset in enumerate(range(0, len(audio), chunk)):
            delay = started + index * pace - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            piece = audio[offset : offset + chunk]
            await self._send({"type": "response.output_audio.delta", **where,
                              "delta": base64.b64encode(piece).decode("ascii")})
            reply.audio_ms += pcm_ms(len(piece))
            self._audio_items[reply.item_id] = reply.audio_ms
            if index < len(words):
                rest = words[index:] if offset + chunk >= len(audio) else [words[index]]
                text = " ".join(rest) + ("" if index + len(rest) >= len(words) else " ")
                await self._send({"type": "response.output_audio_transcript.delta", **where, "delta": text})
        reply.completing = True
        await self._send({"type": "response.output_audio_transcript.done", **where, "transcript": transcript})
        await self._send({"type": "response.output_audio.done", **where})
        await self._send({"type": "response.content_part.done", **where,
                          "part": {"type": "audio", "transcript": transcript}})
        done = dict(item, status="completed", content=[{"type": "output_audio", "transcript": transcript}])
        await self._response_finish(reply, done)

    async def _send_function_call(self, reply: _Reply, name: str, arguments: Event) -> None:
        call_id = self._sim._new_id("call")
        encoded = json.dumps(arguments)
        item: Event = {"id": reply.item_id, "object": "realtime.item", "type": "function_call",
                       "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""}
        await self._response_start(reply, item)
        where = {"response_id": reply.response_id, "item_id": reply.item_id, "output_index": 0, "call_id": call_id}
        await self._send({"type": "response.function_call_arguments.delta", **where, "delta": encoded})
        await self._send({"type": "response.function_call_arguments.done", **where, "name": name,
                          "arguments": encoded})
        self.session.function_calls.append({"call_id": call_id, "name": name, "arguments": arguments})
        await self._response_finish(reply, dict(item, status="completed", arguments=encoded))
