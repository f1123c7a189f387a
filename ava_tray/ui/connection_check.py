"""Settings → Test connection: one handshake against the configured URL, waiting for `session.created`.

Qt-free and audio-free: it opens the socket exactly as a session does and classifies the outcome with
the same `classify_ending` that drives the reconnect policy, so its message matches what AVA would do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from ava_tray.realtime import events
from ava_tray.realtime.connection import EndpointError, Keepalive, open_connection
from ava_tray.realtime.ending import classify_ending

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 15.0


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome: `ok` and a sentence for the user."""

    ok: bool
    message: str


async def check_connection(url: str, api_key: str | None, limit: float = CHECK_TIMEOUT) -> ConnectionCheck:
    """Open one session on `url` with `api_key`, wait for `session.created` (or an error), close it."""
    error_codes: list[str] = []
    try:
        async with asyncio.timeout(limit):
            ws = await open_connection(url, api_key, Keepalive(open_timeout=limit))
            try:
                async for message in ws:
                    try:
                        event = events.decode(message)
                    except events.MalformedServerEvent:
                        continue
                    if event["type"] == "session.created":
                        return ConnectionCheck(True, "Connected: the server accepted the key and started a session.")
                    if event["type"] == "error":
                        code = events.error_code(event)
                        if code:
                            error_codes.append(code)
                            ending = classify_ending(error_codes=error_codes)
                            if ending.is_fatal:
                                return ConnectionCheck(False, ending.message)
                ending = classify_ending(close_code=ws.close_code, close_reason=ws.close_reason or "",
                                         error_codes=error_codes)
                return ConnectionCheck(False, ending.message)
            finally:
                with contextlib.suppress(Exception):
                    await ws.close(1000, "connection test done")
    except EndpointError as exc:
        return ConnectionCheck(False, str(exc))
    except TimeoutError:
        return ConnectionCheck(False, "The server did not answer in time.")
    except Exception as exc:
        ending = classify_ending(exception=exc, error_codes=error_codes)
        logger.info("connection test failed: %s", ending.message)
        return ConnectionCheck(False, ending.message)
