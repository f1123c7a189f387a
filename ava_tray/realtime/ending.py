"""Why did a session end? One function turns every ending into a cause the supervisor acts on."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake, InvalidStatus

from ava_tray.realtime.models import replacement_for


class Cause(enum.StrEnum):
    """The reason a session ended, as the reconnect policy sees it."""

    SESSION_EXPIRED = "session_expired"
    CONNECTION_LOST = "connection_lost"
    ROLLOVER = "rollover"
    FATAL = "fatal"
    OTHER = "other"
    USER_RESTART = "user_restart"
    STOPPED = "stopped"
    PAUSED = "paused"


FATAL_CLOSE_CODES = frozenset({3000, 4000})
MODEL_REFUSED_CODES = frozenset({"model_not_found", "invalid_model", "model_not_available", "unsupported_model",
                                 "model_deprecated", "DeploymentNotFound"})
"""Error codes that mean the server will not serve the model asked for (fatal: retrying cannot help)."""
FATAL_ERROR_CODES = MODEL_REFUSED_CODES | frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "beta_api_shape_disabled",
    }
)
LOST_CLOSE_CODES = frozenset({1006, 1011, 1012, 1013, 1014})
NORMAL_CLOSE_CODES = frozenset({1000, 1005})

_FATAL_SENTENCES = {
    "invalid_api_key": "The API key was rejected. Replace it in Settings (or run `ava-tray --set-key`).",
    "insufficient_quota": "The OpenAI account has no quota left. Add credit to the account, then restart.",
    "account_deactivated": "The OpenAI account is deactivated. Use another key in Settings.",
    "billing_hard_limit_reached": "The account's billing limit is reached. Raise it, then restart.",
    "beta_api_shape_disabled": "The server refused the old beta interface. Update AVA Tray.",
}


@dataclass(frozen=True)
class SessionEnding:
    """How one session ended: the cause plus what the server and the socket said."""

    cause: Cause
    message: str
    close_code: int | None = None
    close_reason: str = ""
    error_code: str | None = None
    unreachable: bool = False
    """The server could not be reached at all (refused, unroutable, no answer): worth probing for."""
    use_model: str | None = None
    """The server refused the model: this one is offered instead (one action switches to it)."""

    @property
    def is_fatal(self) -> bool:
        return self.cause is Cause.FATAL


class SessionAborted(Exception):
    """A session gave up on its own (audio device gone, no `session.created`, ...); carries its ending."""

    def __init__(self, ending: SessionEnding) -> None:
        super().__init__(ending.message)
        self.ending = ending


def _fatal_for_code(code: str) -> SessionEnding:
    return SessionEnding(Cause.FATAL, _FATAL_SENTENCES.get(code, f"The server refused AVA: {code}."),
                         error_code=code)


def model_refused(model: str, how: str) -> SessionEnding:
    """The server will not serve `model`: one sentence naming it and the model to use instead."""
    instead = replacement_for(model)
    return SessionEnding(Cause.FATAL, f"The server refused the model {model} ({how}). Use {instead} instead: "
                         f"choose “Use {instead}” (or change the model in Settings).",
                         error_code="model_refused", use_model=instead)


def classify_ending(
    *,
    exception: BaseException | None = None,
    close_code: int | None = None,
    close_reason: str = "",
    error_codes: Iterable[str] = (),
    model: str | None = None,
) -> SessionEnding:
    """Classify a session's end from the exception (if any), the close frame and the error codes seen.

    The order matters: a fatal error code beats everything (a refused `model` is named with the one to use
    instead); an expiry (1001 or `session_expired`, in either order) beats the socket closing; a normal
    close with nothing else said is "other".
    """
    codes = list(error_codes)
    refused = next((code for code in codes if code in MODEL_REFUSED_CODES), None)
    if refused is not None and model:
        ending = model_refused(model, refused)
        return SessionEnding(ending.cause, ending.message, close_code, close_reason, ending.error_code,
                             use_model=ending.use_model)
    if isinstance(exception, ConnectionClosed):
        frame = exception.rcvd or exception.sent
        if close_code is None and frame is not None:
            close_code, close_reason = frame.code, frame.reason
        if close_code is None:
            close_code = 1006

    for code in codes:
        if code in FATAL_ERROR_CODES:
            ending = _fatal_for_code(code)
            return SessionEnding(ending.cause, ending.message, close_code, close_reason, code)

    if isinstance(exception, InvalidStatus):
        status = exception.response.status_code
        if status in (401, 403):
            return SessionEnding(Cause.FATAL, f"The server refused the API key (HTTP {status}). "
                                 "Replace it in Settings (or run `ava-tray --set-key`).",
                                 error_code=f"http_{status}")
        if status in (400, 404) and model:
            return model_refused(model, f"HTTP {status} at the handshake")
        return SessionEnding(Cause.OTHER, f"The server answered HTTP {status}.", error_code=f"http_{status}")

    if close_code in FATAL_CLOSE_CODES:
        reason_code = close_reason.rsplit(".", 1)[-1] if close_reason else ""
        if reason_code in _FATAL_SENTENCES:
            sentence = _FATAL_SENTENCES[reason_code]
        elif close_code == 3000:
            sentence = _FATAL_SENTENCES["invalid_api_key"]
        else:
            sentence = f"The server refused AVA (close {close_code}: {close_reason or 'no reason'})."
        return SessionEnding(Cause.FATAL, sentence, close_code, close_reason, reason_code or None)

    if close_code == 1001 or "session_expired" in codes:
        limit = _limit_in(close_reason)
        what = f"{limit} limit reached" if limit else "session limit reached"
        return SessionEnding(Cause.SESSION_EXPIRED, f"Session expired ({what})", close_code, close_reason,
                             "session_expired" if "session_expired" in codes else None)

    if isinstance(exception, SessionAborted):
        return exception.ending

    if isinstance(exception, ConnectionClosedError) or close_code in LOST_CLOSE_CODES:
        detail = close_reason or {1006: "no close frame", 1011: "keepalive ping timed out"}.get(
            close_code or 0, f"close {close_code}")
        return SessionEnding(Cause.CONNECTION_LOST, f"Connection lost: {detail}", close_code, close_reason)

    if isinstance(exception, (TimeoutError, OSError)) and not isinstance(exception, InvalidHandshake):
        text = str(exception) or type(exception).__name__
        if isinstance(exception, TimeoutError):
            text = "the server did not answer in time"
        elif isinstance(exception, ConnectionRefusedError) or "Connect call failed" in text:
            text = f"the server refused the connection ({text})"
        return SessionEnding(Cause.CONNECTION_LOST, f"Connection lost: {text}", close_code, close_reason,
                             unreachable=True)

    if exception is not None:
        return SessionEnding(Cause.OTHER, f"Unexpected error: {type(exception).__name__}: {exception}",
                             close_code, close_reason)
    if codes:
        return SessionEnding(Cause.OTHER, f"Unexpected error: the server reported {codes[-1]}",
                             close_code, close_reason, codes[-1])
    reason = f" ({close_reason})" if close_reason else ""
    return SessionEnding(Cause.OTHER, f"Unexpected error: the server closed the session{reason}",
                         close_code, close_reason)


def _limit_in(reason: str) -> str | None:
    """`60-minute` from `Your session hit the maximum duration of 60 minutes.` (or `5-second`)."""
    match = re.search(r"(\d+(?:\.\d+)?) (minute|second)s?\b", reason)
    return f"{match.group(1)}-{match.group(2)}" if match else None
