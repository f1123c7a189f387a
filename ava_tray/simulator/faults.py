"""The failures the simulator can stage on demand, as data: what each one does and whom it hits next."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from ava_tray.simulator.server_events import Event, error_event


class Fault(enum.StrEnum):
    """One way a Realtime server (or the network to it) can fail."""

    DROP = "drop"
    """Abort the TCP transport without a close frame (the client sees 1006)."""
    CLOSE_1011 = "close_1011"
    """Close with 1011 "internal error"."""
    CLOSE_4000 = "close_4000"
    """Send an `error` with code `beta_api_shape_disabled`, then close 4000."""
    HTTP_401 = "http_401"
    """Refuse the next handshake with HTTP 401."""
    HTTP_500 = "http_500"
    """Refuse the next handshake with HTTP 500."""
    MALFORMED_JSON = "malformed_json"
    """Send one text frame that is not JSON; the session continues."""
    UNKNOWN_EVENT = "unknown_event"
    """Send an event of a type the client cannot know; the session continues."""
    HALF_OPEN = "half_open"
    """Go silent: stop reading, never answer pings, send nothing (only keepalive can notice)."""
    EXPIRE_NOW = "expire_now"
    """End the session now exactly as at the session limit."""
    ERROR_QUOTA = "error_quota"
    """Send an `error` with code `insufficient_quota`, then close 1000 "insufficient_quota"."""
    SERVER_ERROR = "server_error"
    """Break the session for good, as Azure's sticky failure: an `error` `server_error` now, and every later
    response fails the same way (`response.done` status failed); the session stays open."""

    @property
    def at_handshake(self) -> bool:
        """Applies to the next handshakes rather than to sessions."""
        return self in HANDSHAKE_REFUSALS

    @property
    def ends_session(self) -> bool:
        """The session does not survive it (one use per session)."""
        return not self.at_handshake and self not in ODD_FRAMES


@dataclass(frozen=True)
class Ending:
    """How the server closes a session: an optional `error` event first, then the close frame."""

    code: int
    reason: str
    error_code: str | None = None
    error_type: str = "invalid_request_error"
    error_message: str = ""

    def error(self) -> Event | None:
        """A fresh `error` event to send before the close, or None."""
        if self.error_code is None:
            return None
        return error_event(self.error_code, self.error_message, type_=self.error_type)


BETA_REFUSAL = Ending(
    4000, "invalid_request_error.beta_api_shape_disabled", "beta_api_shape_disabled",
    error_message="The Realtime beta API shape is disabled: use the GA interface without the OpenAI-Beta header.")
"""What OpenAI does to a client that still sends `OpenAI-Beta: realtime=v1`."""

CLOSING_FAULTS: dict[Fault, Ending] = {
    Fault.CLOSE_1011: Ending(1011, "internal error"),
    Fault.CLOSE_4000: BETA_REFUSAL,
    Fault.ERROR_QUOTA: Ending(
        1000, "insufficient_quota", "insufficient_quota", error_type="insufficient_quota",
        error_message="You exceeded your current quota, please check your plan and billing details."),
}
"""The faults that end a session with a close frame of their own."""

ODD_FRAMES: dict[Fault, str | Event] = {
    Fault.MALFORMED_JSON: '{"type": "response.output_audio.delta", "delta": ',
    Fault.UNKNOWN_EVENT: {"type": "future.unknown_event", "note": "a type from the future"},
    Fault.SERVER_ERROR: error_event("server_error", "The server had an error while processing your request "
                                    "(simulated; this session stays broken).", type_="server_error"),
}
"""The faults that send one odd frame per count and leave the session open: raw text, or an event."""


@dataclass(frozen=True)
class HandshakeRefusal:
    """The HTTP answer that refuses a WebSocket handshake (an OpenAI-shaped JSON error body)."""

    status: int
    error_type: str
    error_code: str | None
    message: str


HANDSHAKE_REFUSALS: dict[Fault, HandshakeRefusal] = {
    Fault.HTTP_401: HandshakeRefusal(401, "invalid_request_error", "invalid_api_key",
                                     "Incorrect API key provided (simulated)."),
    Fault.HTTP_500: HandshakeRefusal(500, "server_error", None,
                                     "The server had an error while processing your request (simulated)."),
}


@dataclass
class _Staged:
    fault: Fault
    remaining: int


class FaultSchedule:
    """The faults staged for later: refusals for the next handshakes, and faults for the next sessions."""

    def __init__(self) -> None:
        self._handshakes: deque[Fault] = deque()
        self._sessions: list[_Staged] = []

    def stage(self, fault: Fault, count: int, *, hit_open_sessions: bool) -> None:
        """Keep what `inject(fault, count)` leaves for later.

        Handshake faults refuse the next `count` handshakes. A session-ending fault that already hit the open
        sessions used one of its `count`; the rest go to the following sessions, one each. Odd frames that
        already went to the open sessions leave nothing; otherwise all `count` go to the next session.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        if fault.at_handshake:
            self._handshakes.extend([fault] * count)
            return
        remaining = (count - 1 if fault.ends_session else 0) if hit_open_sessions else count
        if remaining:
            self._sessions.append(_Staged(fault, remaining))

    def next_handshake(self) -> Fault | None:
        """The refusal for the handshake being made now, if one is staged."""
        return self._handshakes.popleft() if self._handshakes else None

    def for_new_session(self) -> list[tuple[Fault, int]]:
        """The faults (with counts) a session that just sent `session.created` takes: at most one that ends it,
        and every staged odd frame."""
        taken: list[tuple[Fault, int]] = []
        ended = False
        for staged in list(self._sessions):
            if staged.fault.ends_session:
                if ended:
                    continue
                ended = True
                taken.append((staged.fault, 1))
                staged.remaining -= 1
            else:
                taken.append((staged.fault, staged.remaining))
                staged.remaining = 0
            if staged.remaining <= 0:
                self._sessions.remove(staged)
        return taken
