"""Opening a Realtime WebSocket: the URL rules, the one header, keepalive pings."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from ava_tray.realtime.providers import Provider, auth_headers, recognise

logger = logging.getLogger(__name__)

DEFAULT_URL = "wss://api.openai.com/v1/realtime"
"""OpenAI's GA endpoint; the model goes into the query when a session opens (providers.session_url)."""


class EndpointError(ValueError):
    """The endpoint URL cannot be used; the message says why and what to enter instead."""


def check_endpoint(url: str) -> str:
    """Return `url` if AVA may connect to it: `wss://` anywhere, plain `ws://` only on loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise EndpointError(f"The endpoint {url!r} is not a WebSocket URL: use wss://host/path.")
    if parts.scheme == "ws" and not is_loopback(parts.hostname):
        raise EndpointError(f"The endpoint {url!r} is unencrypted: ws:// is allowed only on this computer "
                            "(localhost); use wss://.")
    return url.strip()


def is_loopback(host: str) -> bool:
    """"localhost" or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Keepalive:
    """WebSocket ping settings: a half-open socket is noticed within interval + timeout."""

    interval: float = 10.0
    timeout: float = 10.0
    open_timeout: float = 10.0


async def open_connection(url: str, api_key: str | None, keepalive: Keepalive, *,
                          provider: Provider | None = None) -> ClientConnection:
    """Open the socket with the one header the provider takes for the key (`Authorization: Bearer`, or Azure's
    `api-key`), never the retired beta header; the provider is recognised from the URL unless given."""
    headers = auth_headers(provider or recognise(url), api_key)
    return await connect(
        check_endpoint(url),
        additional_headers=headers,
        open_timeout=keepalive.open_timeout,
        ping_interval=keepalive.interval,
        ping_timeout=keepalive.timeout,
        close_timeout=2.0,
        max_size=16 * 1024 * 1024,
        compression=None,
        user_agent_header="ava-tray",
    )


async def endpoint_reachable(url: str, patience: float = 2.0) -> bool:
    """A cheap check (a TCP connect, no session, no key) that the endpoint answers at all."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        async with asyncio.timeout(patience):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
