"""`keyring:ENTRY` values in mcp.json's `env` and `headers`: read from the OS keyring when a server starts.

The entry is the keyring's user name under AVA's service (`ava-tray`), so
`python -m keyring set ava-tray weather-token` stores one. A resolved value is registered with
`ava_tray.redact`, so it is cut out of every log line, and it is never logged by name either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import keyring
import keyring.errors

from ava_tray.keystore import SERVICE
from ava_tray.redact import register_secret

logger = logging.getLogger(__name__)

PREFIX = "keyring:"


class SecretUnavailable(Exception):
    """A `keyring:` value cannot be read; the message says which entry and what to do (never a value)."""


def names_secret(value: str) -> bool:
    """True if `value` names a keyring entry instead of holding the value itself."""
    return value.startswith(PREFIX) and bool(value[len(PREFIX):].strip())


def resolve_secrets(values: Mapping[str, str], *, server: str) -> dict[str, str]:
    """`values` with every `keyring:ENTRY` replaced by the entry's secret (blocking: call off the loop)."""
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if not names_secret(value):
            resolved[key] = value
            continue
        entry = value[len(PREFIX):].strip()
        try:
            secret = keyring.get_password(SERVICE, entry)
        except keyring.errors.NoKeyringError:
            raise SecretUnavailable(f"{key} of the MCP server {server!r} names the keyring entry {entry!r}, but "
                                    "no OS keyring is available (start a Secret Service such as gnome-keyring)") \
                from None
        except Exception as exc:
            raise SecretUnavailable(f"{key} of the MCP server {server!r}: the OS keyring failed reading the entry "
                                    f"{entry!r} ({type(exc).__name__}); check that it is unlocked") from None
        if not secret:
            raise SecretUnavailable(f"{key} of the MCP server {server!r} names the keyring entry {entry!r}, which "
                                    f"does not exist: store it with `python -m keyring set {SERVICE} {entry}`")
        register_secret(secret)
        resolved[key] = secret
    return resolved
