"""The socket-free server side of one simulated Realtime session: configuration, items, turns and responses.

`SessionModel` takes client events (and the time) and returns what the socket layer must do: send these
events, close with this code, abort, go silent. It never touches a socket or a task; time passes only when
its caller says so (`advance(now)`), and `next_deadline` says when that must next happen.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, assert_never

from ava_tray.realtime.events import SAMPLE_RATE
from ava_tray.realtime.events import pcm_duration_ms as pcm_ms
from ava_tray.simulator.faults import BETA_REFUSAL, CLOSING_FAULTS, ODD_FRAMES, Ending, Fault
from ava_tray.simulator.server_events import (
    Event,
    default_session,
    error_event,
    expiry_reason,
    merge_session,
    rate_limits_event,
    response_body,
    session_event,
)
from ava_tray.simulator.voice import SpeechStarted, SpeechStopped, TurnDetector, ms_bytes, synthetic_voice

logger = logging.getLogger(__name__)

DEFAULT_REPLY_SECONDS = 1.5
CHUNK_MS = 100
MIN_COMMIT_MS = 100
SYNTHETIC_TRANSCRIPT = "Hello, this is the AVA simulator speaking."
INVALID_KEY = Ending(3000, "invalid_request_error.invalid_api_key")
SHUTDOWN = Ending(1001, "server shutting down")
INTERNAL_ERROR = Ending(1011, "internal error")


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
    api_key_header: str | None = field(default=None, repr=False)
    """The `api-key` header (Azure's way to send a key) as received; never logged."""
    request_path: str = ""
    """The path and query the client asked for (where the model or Azure deployment went)."""
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
    assistant_audio_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds of audio sent so far per assistant audio item still in the conversation (as truncated)."""

    @property
    def open(self) -> bool:
        return self.closed_at is None


class SimulatorSettings(Protocol):
    """What a session reads from its server, live (a change applies from the next reply or turn on)."""

    @property
    def api_key(self) -> str | None: ...
    @property
    def session_limit(self) -> float: ...
    @property
    def expiry_error_first(self) -> bool: ...
    @property
    def reply_seconds(self) -> float | None: ...
    @property
    def reply_speed(self) -> float: ...
    @property
    def reply_usage(self) -> Event | None: ...
    @property
    def refused_models(self) -> frozenset[str]: ...
    @property
    def azure(self) -> bool: ...
    @property
    def speech_threshold(self) -> float: ...
    @property
    def silence_ms(self) -> int: ...
    @property
    def record_audio(self) -> bool: ...


@dataclass(frozen=True)
class FunctionCall:
    """A call the server makes instead of its next reply (`RealtimeSimulator.request_function_call`)."""

    name: str
    arguments: Event


# -- what the socket layer must do ------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send `event` as one JSON text frame."""

    event: Event


@dataclass(frozen=True)
class SendText:
    """Send `text` as it is (a frame that need not be JSON)."""

    text: str


@dataclass(frozen=True)
class Close:
    """Close the WebSocket with `code` and `reason`, after everything sent before."""

    code: int
    reason: str


@dataclass(frozen=True)
class Abort:
    """Drop the transport without a close frame (the peer sees 1006)."""


@dataclass(frozen=True)
class GoSilent:
    """Stop reading and never answer again (a half-open socket); report `peer_left` when the peer hangs up."""


Action = Send | SendText | Close | Abort | GoSilent


class SessionState(enum.IntEnum):
    """Where a session is; the model emits events only while OPEN (and the error of its own close)."""

    CONNECTING = 0
    """Accepted; `start` decides between `session.created` and a refusal."""
    OPEN = 1
    """`session.created` sent: client events are answered."""
    SILENT = 2
    """Half-open: nothing is read or sent until the peer leaves or the session ends."""
    CLOSING = 3
    """A close or an abort is decided; client events still count, answers are dropped."""
    CLOSED = 4
    """The socket is gone."""


class InvalidState(Exception):
    """A call the session's current state does not allow."""


@dataclass
class _AudioReply:
    """The audio response being streamed now, one `CHUNK_MS` chunk per `pace` seconds from `started`."""

    response_id: str
    item: Event
    audio: bytes
    transcript: str
    started: float
    pace: float
    next_chunk: int = 0
    audio_ms: float = 0.0

    @property
    def chunk_count(self) -> int:
        return -(-len(self.audio) // ms_bytes(CHUNK_MS))

    @property
    def next_chunk_at(self) -> float:
        return self.started + self.next_chunk * self.pace


class SessionModel:
    """One simulated Realtime session without its socket: every public method returns the actions to take.

    `new_id(prefix)` issues ids unique across the server; `next_function_call()` hands out the calls the
    server was asked to make instead of a reply.
    """

    def __init__(self, record: SimulatedSession, settings: SimulatorSettings, *, model_name: str,
                 new_id: Callable[[str], str],
                 next_function_call: Callable[[], FunctionCall | None] = lambda: None) -> None:
        self.record = record
        self._settings = settings
        self._new_id = new_id
        self._next_function_call = next_function_call
        self._state = SessionState.CONNECTING
        self._actions: list[Action] = []
        self._config = default_session(record.id, model_name, record.expires_at, settings.silence_ms)
        self._detector = TurnDetector(settings.speech_threshold, settings.silence_ms)
        self._create_response = True
        self._interrupt_response = True
        self._audio_sent = False
        self._broken = False
        """`Fault.SERVER_ERROR` broke this session: every later response fails."""
        self._items: dict[str, Event] = {}
        self._user_item_id: str | None = None
        self._pending_turn_pcm: bytes | None = None
        self._reply: _AudioReply | None = None
        self._expires_at = float("inf")
        self._handlers: dict[str, Callable[[Event, float], None]] = {
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

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    def _enter(self, state: SessionState) -> None:
        if state is not self._state:
            logger.debug("simulated session %s: %s -> %s", self.record.id, self._state.name, state.name)
            self._state = state

    @property
    def ready(self) -> bool:
        """Open for events and faults: `session.created` sent, not ending, not silent."""
        return self._state is SessionState.OPEN

    @property
    def idle(self) -> bool:
        """Ready and not replying: a reply or a function call can start now."""
        return self.ready and self._reply is None

    @property
    def next_deadline(self) -> float | None:
        """When `advance` must next be called (the next audio chunk or the session limit), or None."""
        if self._state not in (SessionState.OPEN, SessionState.SILENT):
            return None
        if self._reply is not None:
            return min(self._reply.next_chunk_at, self._expires_at)
        return self._expires_at

    # -- entry points -------------------------------------------------------------------------

    def start(self, *, beta_header: bool = False) -> list[Action]:
        """Admit the connection (`session.created`) or refuse it (wrong key: 3000; beta header: 4000)."""
        if self._state is not SessionState.CONNECTING:
            raise InvalidState(f"the session is already {self._state.name.lower()}")
        expected = self._settings.api_key
        given = self.record.authorization or ""
        bearer_expected = expected is not None and not self._settings.azure  # Azure checked api-key at the handshake
        if bearer_expected and not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            logger.info("simulated session %s: wrong or missing API key", self.record.id)
            self._end(INVALID_KEY)
        elif beta_header:
            self._end(BETA_REFUSAL)
        else:
            self._enter(SessionState.OPEN)
            self._expires_at = self.record.opened_at + self._settings.session_limit
            self._emit(session_event("session.created", self._config))
        return self._take_actions()

    def receive_text(self, message: str | bytes, now: float) -> list[Action]:
        """Take one WebSocket message from the client: a JSON client event, or an `invalid_json` error."""
        try:
            event = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return self._reject_message("The client event is not valid JSON.")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return self._reject_message("A client event must be a JSON object with a string `type`.")
        return self.receive(event, now)

    def receive(self, event: Event, now: float) -> list[Action]:
        """Take one client event (a dict with a string `type`) that arrived at `now`."""
        if self._state in (SessionState.CONNECTING, SessionState.CLOSED):
            raise InvalidState(f"no client events while {self._state.name.lower()}")
        if self._state is SessionState.SILENT:
            return []
        self._record(event)
        handler = self._handlers.get(event["type"])
        if handler is None:
            self._error("unknown_event", f"Unknown client event type {event['type']!r}.", param="type",
                        client_event=event)
        else:
            handler(event, now)
        return self._take_actions()

    def advance(self, now: float) -> list[Action]:
        """Let time pass up to `now`: stream the audio chunks now due, and expire at the session limit."""
        if self._state in (SessionState.OPEN, SessionState.SILENT):
            self._stream_reply(min(now, self._expires_at))
            if now >= self._expires_at:
                self._expire()
        return self._take_actions()

    def apply_fault(self, fault: Fault, count: int = 1) -> list[Action]:
        """Stage `fault` on this session now (`count` frames for the odd-frame ones); ignored unless ready."""
        if not self.ready:
            return []
        logger.info("simulated session %s: fault %s", self.record.id, fault.value)
        self.record.faults.append(fault)
        match fault:
            case Fault.DROP:
                self._abort()
            case Fault.CLOSE_1011 | Fault.CLOSE_4000 | Fault.ERROR_QUOTA:
                self._end(CLOSING_FAULTS[fault])
            case Fault.SERVER_ERROR:
                self._broken = True
                frame = ODD_FRAMES[fault]
                assert isinstance(frame, dict)
                self._emit({**frame, "error": dict(frame["error"])})
            case Fault.MALFORMED_JSON | Fault.UNKNOWN_EVENT:
                frame = ODD_FRAMES[fault]
                for _ in range(count):
                    if isinstance(frame, str):
                        self._actions.append(SendText(frame))
                    else:
                        self._emit(dict(frame))
            case Fault.HALF_OPEN:
                self._stop_reply()
                self._enter(SessionState.SILENT)
                self._actions.append(GoSilent())
            case Fault.EXPIRE_NOW:
                self._expire()
            case Fault.HTTP_401 | Fault.HTTP_500:
                pass  # refused at the handshake: never reaches a session
            case _:
                assert_never(fault)
        return self._take_actions()

    def reply_with_function_call(self, call: FunctionCall) -> list[Action]:
        """Make `call` now, as a whole response; InvalidState unless idle."""
        self._require_idle()
        self._send_function_call(call)
        return self._take_actions()

    def reply_with_audio(self, seconds: float, now: float) -> list[Action]:
        """Start an unsolicited synthetic-voice reply of `seconds`; InvalidState unless idle."""
        self._require_idle()
        self._start_audio_reply(synthetic_voice(seconds), SYNTHETIC_TRANSCRIPT, now)
        return self._take_actions()

    def end(self, ending: Ending) -> list[Action]:
        """End the session from outside (the server stops, or failed): close as `ending` says, abort if silent."""
        self._end(ending)
        return self._take_actions()

    def peer_left(self) -> list[Action]:
        """The peer hung up on a silent session: abort what is left of it."""
        if self._state is SessionState.SILENT:
            self._abort()
        return self._take_actions()

    def connection_closed(self, now: float, code: int, reason: str) -> None:
        """The socket is gone; `code` and `reason` are what it observed (kept unless the server chose its own)."""
        self._stop_reply()
        self._enter(SessionState.CLOSED)
        if self.record.close_code is None:
            self.record.close_code, self.record.close_reason = code, reason
        self.record.closed_at = now

    # -- emitting -----------------------------------------------------------------------------

    def _take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def _emit(self, event: Event, *, closing: bool = False) -> None:
        """Send one server event with a fresh `event_id`; dropped unless open (or it is the close's own error)."""
        if not (self._state is SessionState.OPEN or (closing and self._state is SessionState.CLOSING)):
            return
        event.setdefault("event_id", self._new_id("event"))
        if event["type"] == "error" and event["error"].get("code"):
            self.record.errors_sent.append(str(event["error"]["code"]))
        self._actions.append(Send(event))

    def _error(self, code: str, message: str, *, param: str | None = None, client_event: Event | None = None) -> None:
        event_id = client_event.get("event_id") if client_event else None
        self._emit(error_event(code, message, param=param, event_id=event_id if isinstance(event_id, str) else None))

    def _reject_message(self, message: str) -> list[Action]:
        if self._state in (SessionState.CONNECTING, SessionState.CLOSED):
            raise InvalidState(f"no client events while {self._state.name.lower()}")
        if self._state is not SessionState.SILENT:
            self._error("invalid_json", message)
        return self._take_actions()

    def _require_idle(self) -> None:
        if not self.idle:
            raise InvalidState("a reply is under way" if self.ready else f"the session is {self._state.name.lower()}")

    # -- ending -------------------------------------------------------------------------------

    def _end(self, ending: Ending) -> None:
        """Close with `ending` (its error first, if any); a silent session is aborted instead."""
        if self._state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        silent = self._state is SessionState.SILENT
        self._stop_reply()
        self._enter(SessionState.CLOSING)
        if silent:
            self._abort()
            return
        self.record.close_code, self.record.close_reason = ending.code, ending.reason
        error = ending.error()
        if error is not None:
            self._emit(error, closing=True)
        self._actions.append(Close(ending.code, ending.reason))

    def _abort(self) -> None:
        self._stop_reply()
        self._enter(SessionState.CLOSING)
        if self.record.close_code is None:
            self.record.close_code = 1006
        self._actions.append(Abort())

    def _expire(self) -> None:
        logger.info("simulated session %s expires", self.record.id)
        reason = expiry_reason(self._settings.session_limit)
        error_code = "session_expired" if self._settings.expiry_error_first else None
        self._end(Ending(1001, reason, error_code, error_message=reason))

    # -- client events ------------------------------------------------------------------------

    def _record(self, event: Event) -> None:
        if not self._settings.record_audio and event["type"] == "input_audio_buffer.append":
            audio = event.get("audio")
            event = dict(event, audio=f"<{len(audio) if isinstance(audio, str) else 0} base64 chars>")
        self.record.client_events.append(event)

    def _on_session_update(self, event: Event, now: float) -> None:
        session = event.get("session")
        if not isinstance(session, dict) or session.get("type") != "realtime":
            self._error("invalid_value", "session.update needs the GA shape: a `session` object with "
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
                self._error("invalid_value", "The simulator speaks only audio/pcm at 24000 Hz.",
                            param=f"session.audio.{direction}.format", client_event=event)
                return
        output = audio.get("output")
        voice = output.get("voice") if isinstance(output, dict) else None
        if voice is not None and self._audio_sent and voice != self._voice:
            self._error("cannot_update_voice", "The voice cannot change once the session has produced audio.",
                        param="session.audio.output.voice", client_event=event)
            return
        model = session.get("model")
        if isinstance(model, str) and model in self._settings.refused_models:
            self._error("model_not_found", f"The model `{model}` does not exist or you do not have access to it.",
                        param="session.model", client_event=event)
            return
        self.record.session_updates.append(event)
        self._config = merge_session(self._config,
                                     {k: v for k, v in session.items() if k not in ("id", "expires_at")})
        turn_detection = self._config["audio"]["input"].get("turn_detection")
        self._detector.enabled = isinstance(turn_detection, dict)
        if isinstance(turn_detection, dict):
            self._create_response = bool(turn_detection.get("create_response", True))
            self._interrupt_response = bool(turn_detection.get("interrupt_response", True))
        self._emit(session_event("session.updated", self._config))
        self._emit(rate_limits_event())

    @property
    def _voice(self) -> str:
        return str(self._config["audio"]["output"]["voice"])

    # -- input audio and turns ----------------------------------------------------------------

    def _on_append(self, event: Event, now: float) -> None:
        audio = event.get("audio")
        try:
            if not isinstance(audio, str):
                raise ValueError
            pcm = base64.b64decode(audio, validate=True)
        except (ValueError, binascii.Error):
            self._error("invalid_value", "`audio` must be base64-encoded PCM16.", param="audio", client_event=event)
            return
        ms = pcm_ms(len(pcm))
        self.record.received_audio_ms += ms
        self.record.audio_arrivals.append((now, ms))
        for turn in self._detector.feed(pcm):
            if isinstance(turn, SpeechStarted):
                self._on_speech_started(turn)
            else:
                self._on_speech_stopped(turn, now)

    def _on_speech_started(self, turn: SpeechStarted) -> None:
        self._user_item_id = self._new_id("item")
        self.record.speech_started += 1
        self._emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": turn.audio_start_ms,
                    "item_id": self._user_item_id})
        if self._interrupt_response and self._reply is not None:
            self._cancel_reply("turn_detected")

    def _on_speech_stopped(self, turn: SpeechStopped, now: float) -> None:
        item_id = self._user_item_id or self._new_id("item")
        self._user_item_id = None
        self._emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": turn.audio_end_ms,
                    "item_id": item_id})
        self._user_turn(item_id, turn.pcm)
        if self._create_response:
            if self._reply is None:
                self._start_reply(turn.pcm, now)
            else:
                logger.debug("simulated session %s: a reply is still running; no new one", self.record.id)

    def _user_turn(self, item_id: str, pcm: bytes) -> None:
        """Commit a user audio turn: committed, the item, its transcription."""
        previous = self._last_item_id
        self._emit({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        transcript = f"({pcm_ms(len(pcm)) / 1000:.1f} s of speech)"
        item: Event = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                       "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self._items[item_id] = item
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        self._emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        self._emit({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                    "content_index": 0, "transcript": transcript,
                    "usage": {"type": "duration", "seconds": round(pcm_ms(len(pcm)) / 1000, 3)}})

    def _on_commit(self, event: Event, now: float) -> None:
        if self._detector.buffered_ms < MIN_COMMIT_MS:
            self._error("input_audio_buffer_commit_empty",
                        f"Error committing input audio buffer: buffer too small. Expected at least "
                        f"{MIN_COMMIT_MS}ms of audio, but buffer only has "
                        f"{self._detector.buffered_ms:.2f}ms of audio.", client_event=event)
            return
        pcm = self._detector.commit()
        item_id = self._user_item_id or self._new_id("item")
        self._user_item_id = None
        self._pending_turn_pcm = pcm
        self._user_turn(item_id, pcm)

    def _on_clear(self, event: Event, now: float) -> None:
        self._detector.clear()
        self._user_item_id = None
        self._emit({"type": "input_audio_buffer.cleared"})

    # -- conversation items -------------------------------------------------------------------

    @property
    def _last_item_id(self) -> str | None:
        return next(reversed(self._items), None)

    def _on_item_create(self, event: Event, now: float) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in ("message", "function_call",
                                                                   "function_call_output"):
            self._error("invalid_value", "`item` must be a message, function_call or function_call_output.",
                        param="item.type", client_event=event)
            return
        if item["type"] == "function_call_output" and not any(
                known.get("type") == "function_call" and known.get("call_id") == item.get("call_id")
                for known in self._items.values()):
            # As OpenAI: an output must answer a function_call item of this session's conversation.
            self._error("invalid_tool_call_id", f"Tool call ID {item.get('call_id')!r} not found in conversation.",
                        param="item.call_id", client_event=event)
            return
        item = copy.deepcopy(item)
        item.setdefault("id", self._new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        previous = event.get("previous_item_id")
        if not isinstance(previous, str) or (previous != "root" and previous not in self._items):
            previous = self._last_item_id
        elif previous == "root":
            previous = None
        self._items[item["id"]] = item
        if item["type"] == "function_call_output":
            self.record.function_outputs.append(item)
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        self._emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    def _on_truncate(self, event: Event, now: float) -> None:
        self.record.truncates.append(event)
        audio_items = self.record.assistant_audio_ms
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        if not isinstance(item_id, str) or item_id not in audio_items:
            self._error("invalid_value", f"No assistant audio item with id {item_id!r}.", param="item_id",
                        client_event=event)
            return
        if not isinstance(end_ms, int) or end_ms < 0 or end_ms > audio_items[item_id] + 1:
            self._error("invalid_value", f"audio_end_ms {end_ms!r} is beyond the item's "
                        f"{audio_items[item_id]:.0f} ms of audio.", param="audio_end_ms", client_event=event)
            return
        audio_items[item_id] = float(end_ms)
        self._emit({"type": "conversation.item.truncated", "item_id": item_id,
                    "content_index": event.get("content_index", 0), "audio_end_ms": end_ms})

    def _on_item_delete(self, event: Event, now: float) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or self._items.pop(item_id, None) is None:
            self._error("invalid_value", f"No item with id {item_id!r}.", param="item_id", client_event=event)
            return
        self.record.assistant_audio_ms.pop(item_id, None)
        self._emit({"type": "conversation.item.deleted", "item_id": item_id})

    def _on_item_retrieve(self, event: Event, now: float) -> None:
        item_id = event.get("item_id")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            self._error("invalid_value", f"No item with id {item_id!r}.", param="item_id", client_event=event)
            return
        self._emit({"type": "conversation.item.retrieved", "item": item})

    # -- responses ----------------------------------------------------------------------------

    def _on_response_create(self, event: Event, now: float) -> None:
        if self._reply is not None:
            self._error("conversation_already_has_active_response", "Conversation already has an active "
                        f"response in progress: {self._reply.response_id}.", client_event=event)
            return
        pcm, self._pending_turn_pcm = self._pending_turn_pcm, None
        self._start_reply(pcm, now)

    def _on_response_cancel(self, event: Event, now: float) -> None:
        wanted = event.get("response_id")
        if self._reply is None or (isinstance(wanted, str) and wanted != self._reply.response_id):
            self._error("response_cancel_not_active", "Cancellation failed: no active response found.",
                        client_event=event)
            return
        self._cancel_reply("client_cancelled")

    def _start_reply(self, pcm: bytes | None, now: float) -> None:
        """Reply to a turn: a requested function call if one is queued, else audio (the turn echoed back)."""
        if not self.ready:
            return  # the session is ending: no new response
        if self._broken:
            self._fail_response()
            return
        call = self._next_function_call()
        if call is not None:
            self._send_function_call(call)
            return
        reply_seconds = self._settings.reply_seconds
        if reply_seconds is not None or not pcm:
            seconds = reply_seconds if reply_seconds is not None else DEFAULT_REPLY_SECONDS
            self._start_audio_reply(synthetic_voice(seconds), SYNTHETIC_TRANSCRIPT, now)
        else:
            self._start_audio_reply(pcm, f"You said something for {pcm_ms(len(pcm)) / 1000:.1f} seconds.", now)

    def _fail_response(self) -> None:
        """A broken session (`Fault.SERVER_ERROR`): every response fails with `server_error`."""
        response_id = self._new_id("resp")
        self._emit({"type": "response.created", "response": self._response(response_id, "in_progress", [])})
        details = {"type": "failed", "error": {"type": "server_error", "code": "server_error"}}
        self._emit({"type": "response.done",
                    "response": self._response(response_id, "failed", [], status_details=details)})
        self._error("server_error", "The server had an error while processing your request (simulated).")

    def _response(self, response_id: str, status: str, output: list[Event], *, audio_ms: float = 0.0,
                  status_details: Event | None = None) -> Event:
        body = response_body(response_id, status, output, audio_ms=audio_ms, voice=self._voice,
                             status_details=status_details)
        scripted = self._settings.reply_usage
        if scripted is not None and status != "in_progress" and output:
            body["usage"] = dict(scripted)
        return body

    def _response_start(self, response_id: str, item: Event) -> None:
        self._emit({"type": "response.created", "response": self._response(response_id, "in_progress", [])})
        self._emit({"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                    "item": item})
        previous = self._last_item_id
        self._items[item["id"]] = item
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})

    def _response_finish(self, response_id: str, item: Event, audio_ms: float = 0.0) -> None:
        self._items[item["id"]] = item
        self._emit({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                    "item": item})
        self._emit({"type": "conversation.item.done", "item": item})
        self._emit({"type": "response.done",
                    "response": self._response(response_id, "completed", [item], audio_ms=audio_ms)})
        self.record.replies_sent += 1

    def _send_function_call(self, call: FunctionCall) -> None:
        """A whole function-call response at once (there is no audio to pace)."""
        response_id, item_id, call_id = self._new_id("resp"), self._new_id("item"), self._new_id("call")
        encoded = json.dumps(call.arguments)
        item: Event = {"id": item_id, "object": "realtime.item", "type": "function_call",
                       "status": "in_progress", "call_id": call_id, "name": call.name, "arguments": ""}
        self._response_start(response_id, item)
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        self._emit({"type": "response.function_call_arguments.delta", **where, "delta": encoded})
        self._emit({"type": "response.function_call_arguments.done", **where, "name": call.name,
                    "arguments": encoded})
        self.record.function_calls.append({"call_id": call_id, "name": call.name, "arguments": call.arguments})
        self._response_finish(response_id, dict(item, status="completed", arguments=encoded))

    def _start_audio_reply(self, audio: bytes, transcript: str, now: float) -> None:
        """Open an audio response and send what is due at once; `advance` streams the rest."""
        response_id, item_id = self._new_id("resp"), self._new_id("item")
        item: Event = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                       "status": "in_progress", "content": []}
        self._response_start(response_id, item)
        self._emit({"type": "response.content_part.added", **self._where(response_id, item_id),
                    "part": {"type": "audio", "transcript": ""}})
        self._audio_sent = True
        self.record.assistant_audio_ms[item_id] = 0.0
        self._reply = _AudioReply(response_id, item, audio, transcript, started=now,
                                  pace=CHUNK_MS / 1000 / max(self._settings.reply_speed, 0.01))
        self._stream_reply(now)

    @staticmethod
    def _where(response_id: str, item_id: str) -> Event:
        return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}

    def _stream_reply(self, now: float) -> None:
        """Send every chunk (with its transcript words) due by `now`; after the last, finish the response."""
        reply = self._reply
        if reply is None or self._state is not SessionState.OPEN:
            return
        where = self._where(reply.response_id, reply.item["id"])
        chunk = ms_bytes(CHUNK_MS)
        words = reply.transcript.split(" ")
        while reply.next_chunk < reply.chunk_count and reply.next_chunk_at <= now:
            index = reply.next_chunk
            offset = index * chunk
            piece = reply.audio[offset : offset + chunk]
            self._emit({"type": "response.output_audio.delta", **where,
                        "delta": base64.b64encode(piece).decode("ascii")})
            reply.audio_ms += pcm_ms(len(piece))
            self.record.assistant_audio_ms[reply.item["id"]] = reply.audio_ms
            if index < len(words):
                rest = words[index:] if offset + chunk >= len(reply.audio) else [words[index]]
                text = " ".join(rest) + ("" if index + len(rest) >= len(words) else " ")
                self._emit({"type": "response.output_audio_transcript.delta", **where, "delta": text})
            reply.next_chunk += 1
        if reply.next_chunk < reply.chunk_count:
            return
        self._reply = None
        transcript = reply.transcript
        self._emit({"type": "response.output_audio_transcript.done", **where, "transcript": transcript})
        self._emit({"type": "response.output_audio.done", **where})
        self._emit({"type": "response.content_part.done", **where, "part": {"type": "audio", "transcript": transcript}})
        done = dict(reply.item, status="completed", content=[{"type": "output_audio", "transcript": transcript}])
        self._response_finish(reply.response_id, done, reply.audio_ms)

    def _stop_reply(self) -> None:
        """Stop the current reply without a `response.done` (the session is ending)."""
        self._reply = None

    def _cancel_reply(self, reason: str) -> None:
        """Stop the current reply and say so with `response.done` status cancelled."""
        reply, self._reply = self._reply, None
        if reply is None:
            return
        self.record.replies_cancelled += 1
        item = dict(reply.item, status="incomplete")
        self._emit({"type": "response.done", "response": self._response(
            reply.response_id, "cancelled", [item], audio_ms=reply.audio_ms,
            status_details={"type": "cancelled", "reason": reason})})
