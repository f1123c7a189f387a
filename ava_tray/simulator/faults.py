"""The failures the simulator can stage on demand."""

from __future__ import annotations

import enum


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

    @property
    def at_handshake(self) -> bool:
        """Applies to the next handshakes rather than to sessions."""
        return self in (Fault.HTTP_401, Fault.HTTP_500)

    @property
    def ends_session(self) -> bool:
        """The session does not survive it (one use per session)."""
        return self not in (Fault.HTTP_401, Fault.HTTP_500, Fault.MALFORMED_JSON, Fault.UNKNOWN_EVENT)
