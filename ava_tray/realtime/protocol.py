"""One Realtime server session without a socket: server events in, intents out, client events queued.

Like websockets' sans-I/O `Protocol`: `receive` takes one decoded server event and returns what it means
for AVA (`Ready`, `PlayAudio`, `BargeIn`, `RunTool`, ...); the methods that speak to the server
(`configure`, `send_audio`, `truncate`, `answer_tool`, `say`) queue client events that `data_to_send`
hands to whoever owns the socket. The per-session flags (configured, a response running, the user
speaking, the error codes seen, when the session was created and expires) live here and nowhere else.

The life of a session, as data in `TRANSITIONS`:

    CONNECTING --session.created--> CREATED --configure()--> CONFIGURING --session.updated--> OPEN
    any of those --close() or a fatal error--> CLOSING;   any --connection_closed()--> CLOSED

A method called in a state that does not allow it raises `InvalidState` and changes nothing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ava_tray.pricing import Usage, usage_from_response, usage_from_transcription
from ava_tray.realtime import events
from ava_tray.realtime.ending import FATAL_ERROR_CODES

logger = logging.getLogger(__name__)


class State(enum.IntEnum):
    """Where one server session is in its life."""

    CONNECTING = 0
    """The socket is open; the server has not created the session yet."""
    CREATED = 1
    """`session.created` arrived: `configure` it now."""
    CONFIGURING = 2
    """`session.update` (and the conversation so far) sent; waiting for `session.updated`."""
    OPEN = 3
    """Configured: audio and events flow both ways."""
    CLOSING = 4
    """AVA is closing it (handed over, stopping, or a fatal error): nothing more is sent."""
    CLOSED = 5
    """The socket is closed: nothing more is received either."""


class InvalidState(Exception):
    """The protocol was used in a state that does not allow it (a bug in the caller, never the server's)."""


TRANSITIONS: dict[tuple[State, str], State] = {
    (State.CONNECTING, "session.created"): State.CREATED,
    (State.CREATED, "configure"): State.CONFIGURING,
    (State.CONFIGURING, "session.updated"): State.OPEN,
    **{(state, "close"): State.CLOSING
       for state in (State.CONNECTING, State.CREATED, State.CONFIGURING, State.OPEN)},
    **{(state, "connection_closed"): State.CLOSED for state in State if state is not State.CLOSED},
}
"""(state, what happened) -> the next state; what is not here leaves the state as it is."""


# -- intents: what a server event means for AVA ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class Configure:
    """The server created the session: call `configure` with the configuration and the conversation so far."""

    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Ready:
    """The server applied the configuration: the session can take the microphone."""

    expires_at: float | None


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Assistant audio (24 kHz mono int16) to queue on the speaker."""

    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The user started speaking: silence AVA now and `truncate` what was cut."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The server's VAD ended the user's turn (the voice stopped, or the idle timeout)."""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The model started a response (audio or a tool call)."""


@dataclass(frozen=True, slots=True)
class ResponseFinished:
    """The response ended (completed, cancelled, incomplete or failed)."""

    status: str = "completed"
    error_code: str | None = None
    """Why a failed response failed (`server_error`, ...), if the server said."""


@dataclass(frozen=True, slots=True)
class Used:
    """What a response (or the user's transcription) used, for the spend ledger."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class RenewSession:
    """The server failed in a way that sticks to this session (`server_error`): hand over to a fresh one."""

    code: str


@dataclass(frozen=True, slots=True)
class RunTool:
    """The model called a tool: run it, then `answer_tool` (in whichever session is live by then)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Heard:
    """A finished transcript: what the user said (`user`) or what AVA said (`assistant`)."""

    role: str
    text: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An `error` event; most leave the session open. `code` is also kept in `error_codes`."""

    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Fatal:
    """A fatal error code (bad key, no quota, ...): close the socket now; it must not be retried."""

    code: str


Intent = (Configure | Ready | PlayAudio | BargeIn | TurnEnded | ResponseStarted | ResponseFinished | RunTool | Heard
          | ServerError | Fatal | Used | RenewSession)
"""Everything `receive` can return."""


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One encoded client event for the socket; microphone audio carries when it was captured (latency)."""

    text: str
    captured_at: float | None = None


QUIET_EVENTS = frozenset({
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared", "conversation.item.added",
    "conversation.item.done", "conversation.item.created", "conversation.item.truncated",
    "conversation.item.deleted", "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.failed",
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_text.delta", "response.output_text.done", "response.function_call_arguments.delta",
    "rate_limits.updated",
})
"""Server events AVA knows and has nothing to do with (logged at debug)."""

STICKY_ERROR_CODES = frozenset({"server_error"})
"""After one of these, later responses in the same session can fail the same way (seen on Azure): a fresh
session, with the conversation carried over, is the remedy; retrying in the broken one is not."""


class ServerSessionProtocol:
    """The state and meaning of one Realtime server session; no I/O (see the module docstring)."""

    def __init__(self, wall: Callable[[], float], *, known_limit: float | None = None) -> None:
        """`wall` is the wall clock (Unix seconds) that dates `created_at`; `known_limit` is the provider's
        session length, for a server whose `session.created` says no `expires_at`."""
        self._wall = wall
        self._known_limit = known_limit
        self._renewing = False
        self._state = State.CONNECTING
        self._outbox: list[ClientMessage] = []
        self.created_at = wall()
        """Wall time the server created the session (until then, when this protocol was made)."""
        self.expires_at: float | None = None
        """The server's hard deadline (Unix seconds) from `session.created`, if it said one."""
        self.response_active = False
        self.user_speaking = False
        self.error_codes: list[str] = []
        """Every error code the server sent, in order (they decide how the session ended)."""
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Intent]]] = {
            "session.created": self._on_session_created,
            "session.updated": self._on_session_updated,
            "response.output_audio.delta": self._on_audio_delta,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.timeout_triggered": self._on_speech_stopped,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "error": self._on_error,
            "response.function_call_arguments.done": self._on_function_call,
            "conversation.item.input_audio_transcription.completed": self._on_user_transcript,
            "response.output_audio_transcript.done": self._on_assistant_transcript,
        }

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def is_open(self) -> bool:
        """Configured and not closing: client events may be sent."""
        return self._state is State.OPEN

    def _advance(self, trigger: str) -> bool:
        """Take the transition `trigger` from `TRANSITIONS`; False (state unchanged) when there is none."""
        target = TRANSITIONS.get((self._state, trigger))
        if target is None:
            return False
        logger.debug("server session %s -> %s (%s)", self._state.name, target.name, trigger)
        self._state = target
        return True

    def _require(self, trigger: str) -> None:
        if not self._advance(trigger):
            raise InvalidState(f"cannot {trigger} a server session that is {self._state.name.lower()}")

    def close(self) -> None:
        """AVA closes the session: nothing more is sent. Idempotent."""
        self._advance("close")

    def connection_closed(self) -> None:
        """The socket is gone: nothing more is received. Idempotent."""
        self._advance("connection_closed")
        self._outbox.clear()

    # -- server events in, intents out ---------------------------------------------------------

    def receive(self, event: dict[str, Any]) -> list[Intent]:
        """What one decoded server event means for AVA (often nothing); unknown events are ignored."""
        if self._state is State.CLOSED:
            raise InvalidState("cannot receive on a closed server session")
        kind = event["type"]
        handler = self._handlers.get(kind)
        if handler is not None:
            return handler(event)
        if kind in QUIET_EVENTS:
            logger.debug("server event %s", kind)
        else:
            logger.debug("ignored unknown server event %s", kind)
        return []

    def _on_session_created(self, event: dict[str, Any]) -> list[Intent]:
        if not self._advance("session.created"):
            logger.debug("server event session.created")
            return []
        self.created_at = self._wall()
        session = event.get("session")
        if isinstance(session, dict) and isinstance(session.get("expires_at"), (int, float)):
            self.expires_at = float(session["expires_at"])
        elif self._known_limit is not None:
            self.expires_at = self.created_at + self._known_limit
        return [Configure(self.expires_at)]

    def _on_session_updated(self, event: dict[str, Any]) -> list[Intent]:
        if not self._advance("session.updated"):
            logger.debug("server event session.updated")
            return []
        return [Ready(self.expires_at)]

    def _on_audio_delta(self, event: dict[str, Any]) -> list[Intent]:
        try:
            pcm = events.audio_delta_pcm(event)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed audio delta: %s", exc)
            return []
        return [PlayAudio(str(event.get("item_id", "")), pcm)]

    def _on_speech_started(self, event: dict[str, Any]) -> list[Intent]:
        self.user_speaking = True
        return [BargeIn()]

    def _on_speech_stopped(self, event: dict[str, Any]) -> list[Intent]:
        self.user_speaking = False
        return [TurnEnded()]

    def _on_response_created(self, event: dict[str, Any]) -> list[Intent]:
        self.response_active = True
        return [ResponseStarted()]

    def _on_response_done(self, event: dict[str, Any]) -> list[Intent]:
        self.response_active = False
        response = event.get("response")
        response = response if isinstance(response, dict) else {}
        status = str(response.get("status") or "completed")
        details = response.get("status_details")
        error = details.get("error") if isinstance(details, dict) else None
        error_code = None
        if isinstance(error, dict):
            error_code = str(error.get("code") or error.get("type") or "") or None
        intents: list[Intent] = [ResponseFinished(status, error_code)]
        usage = usage_from_response(event)
        if usage is not None:
            intents.append(Used(usage))
        if status == "failed" and error_code in STICKY_ERROR_CODES:
            intents += self._renew(error_code)
        return intents

    def _renew(self, code: str) -> list[Intent]:
        """One `RenewSession` per session, however often the error comes back."""
        if self._renewing or self._state is not State.OPEN:
            return []
        self._renewing = True
        return [RenewSession(code)]

    def _on_error(self, event: dict[str, Any]) -> list[Intent]:
        code = events.error_code(event)
        error = event.get("error")
        param = error.get("param") if isinstance(error, dict) else None
        if isinstance(param, str) and param.split(".")[-1] == "model" and code not in FATAL_ERROR_CODES:
            code = "invalid_model"  # the server named the model as what it refused, whatever its code said
        intents: list[Intent] = [ServerError(code, events.error_message(event))]
        if code:
            self.error_codes.append(code)
            if code in FATAL_ERROR_CODES and self._advance("close"):
                intents.append(Fatal(code))
            elif code in STICKY_ERROR_CODES:
                intents += self._renew(code)
        return intents

    def _on_function_call(self, event: dict[str, Any]) -> list[Intent]:
        call_id, name = str(event.get("call_id", "")), str(event.get("name", ""))
        if not call_id:
            logger.warning("ignored a function call %r with no call id", name)
            return []
        return [RunTool(call_id, name, str(event.get("arguments", "")))]

    def _on_user_transcript(self, event: dict[str, Any]) -> list[Intent]:
        intents: list[Intent] = [Heard("user", str(event.get("transcript", "")))]
        usage = usage_from_transcription(event)
        if usage is not None:
            intents.append(Used(usage))
        return intents

    def _on_assistant_transcript(self, event: dict[str, Any]) -> list[Intent]:
        return [Heard("assistant", str(event.get("transcript", "")))]

    # -- client events out ---------------------------------------------------------------------

    def configure(self, config: events.SessionConfig, replay: dict[str, Any] | None = None) -> None:
        """Answer `Configure`: queue `session.update`, then the conversation so far (`replay`) if any."""
        self._require("configure")
        self._queue(events.session_update(config))
        if replay is not None:
            self._queue(replay)

    def update_tools(self, tools: tuple[events.ToolSpec, ...]) -> None:
        """Declare a new set of tools in the open session (an MCP server came, went or changed its tools)."""
        self._require_open("update the tools of")
        self._queue(events.tools_update(tools))

    def send_audio(self, pcm: bytes, captured_at: float) -> None:
        """Queue one microphone block (24 kHz mono int16) captured at monotonic time `captured_at`."""
        self._require_open("send audio on")
        self._outbox.append(ClientMessage(events.encode(events.input_audio_append(pcm)), captured_at))

    def truncate(self, item_id: str, heard_ms: int) -> None:
        """After a barge-in: the user heard only the first `heard_ms` of assistant item `item_id`."""
        self._require_open("truncate an item on")
        self._queue(events.item_truncate(item_id, heard_ms))

    def answer_tool(self, call: RunTool, output: str, *, recreate_call: bool = False) -> None:
        """Return a tool's output and ask for the reply to it; `recreate_call` first re-creates the call in a
        session that never saw it (the call came from a session since handed over)."""
        self._require_open("answer a tool on")
        if recreate_call:
            self._queue(events.function_call_item(call.call_id, call.name, call.arguments))
        self._queue(events.function_call_output(call.call_id, output))
        self._queue(events.response_create())

    def say(self, text: str) -> None:
        """Have AVA say `text` now (a system message and a response)."""
        self._require_open("speak on")
        self._queue(events.system_message(text))
        self._queue(events.response_create())

    def data_to_send(self) -> list[ClientMessage]:
        """The client events queued since the last call, oldest first."""
        outgoing, self._outbox = self._outbox, []
        return outgoing

    def _require_open(self, what: str) -> None:
        if self._state is not State.OPEN:
            raise InvalidState(f"cannot {what} a server session that is {self._state.name.lower()}")

    def _queue(self, event: dict[str, Any]) -> None:
        self._outbox.append(ClientMessage(events.encode(event)))
