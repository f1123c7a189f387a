"""Every way a session can end maps to the cause the supervisor acts on."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from ava_tray.realtime.ending import Cause, SessionAborted, SessionEnding, classify_ending


def closed(code: int | None, reason: str = "", ok: bool = False) -> Exception:
    frame = Close(code, reason) if code is not None else None
    cls = ConnectionClosedOK if ok else ConnectionClosedError
    return cls(frame, None)


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", None))  # type: ignore[arg-type]


EXPIRY = "Your session hit the maximum duration of 60 minutes."


@pytest.mark.parametrize(("kwargs", "cause"), [
    ({"close_code": 1001, "close_reason": EXPIRY}, Cause.SESSION_EXPIRED),
    ({"exception": closed(1001, EXPIRY, ok=True)}, Cause.SESSION_EXPIRED),
    ({"close_code": 1000, "error_codes": ["session_expired"]}, Cause.SESSION_EXPIRED),
    ({"exception": closed(None)}, Cause.CONNECTION_LOST),
    ({"exception": closed(1011, "keepalive ping timeout")}, Cause.CONNECTION_LOST),
    ({"close_code": 1006}, Cause.CONNECTION_LOST),
    ({"exception": ConnectionRefusedError(111, "Connection refused")}, Cause.CONNECTION_LOST),
    ({"exception": TimeoutError()}, Cause.CONNECTION_LOST),
    ({"exception": closed(3000, "invalid_request_error.invalid_api_key")}, Cause.FATAL),
    ({"close_code": 4000, "error_codes": ["beta_api_shape_disabled"]}, Cause.FATAL),
    ({"close_code": 4000}, Cause.FATAL),
    ({"exception": status(401)}, Cause.FATAL),
    ({"exception": status(403)}, Cause.FATAL),
    ({"exception": status(500)}, Cause.OTHER),
    ({"close_code": 1000, "error_codes": ["insufficient_quota"]}, Cause.FATAL),
    ({"error_codes": ["account_deactivated"]}, Cause.FATAL),
    ({"error_codes": ["billing_hard_limit_reached"]}, Cause.FATAL),
    ({"error_codes": ["invalid_api_key"]}, Cause.FATAL),
    ({"close_code": 1000}, Cause.OTHER),
    ({"exception": RuntimeError("boom")}, Cause.OTHER),
])
def test_classification(kwargs: dict[str, object], cause: Cause) -> None:
    assert classify_ending(**kwargs).cause is cause  # type: ignore[arg-type]


def test_expiry_message_names_the_real_limit() -> None:
    assert classify_ending(close_code=1001, close_reason=EXPIRY).message == \
        "Session expired (60-minute limit reached)"
    five = classify_ending(close_code=1001, close_reason="Your session hit the maximum duration of 5 seconds.")
    assert five.message == "Session expired (5-second limit reached)"


def test_expiry_error_before_or_after_the_close_is_still_expiry() -> None:
    first = classify_ending(exception=closed(1001, EXPIRY, ok=True), error_codes=["session_expired"])
    assert first.cause is Cause.SESSION_EXPIRED
    assert first.error_code == "session_expired"


def test_fatal_code_wins_over_expiry_and_says_what_to_do() -> None:
    ending = classify_ending(close_code=1001, error_codes=["session_expired", "insufficient_quota"])
    assert ending.cause is Cause.FATAL
    assert "quota" in ending.message


def test_bad_key_sentence_names_the_fix() -> None:
    ending = classify_ending(exception=closed(3000, "invalid_request_error.invalid_api_key"))
    assert ending.message.startswith("The API key was rejected")
    assert ending.close_code == 3000


def test_aborted_session_keeps_its_own_ending() -> None:
    own = SessionEnding(Cause.OTHER, "No microphone found.")
    assert classify_ending(exception=SessionAborted(own)) == own
