"""Keep the API key out of every log line, record and message AVA writes."""

from __future__ import annotations

import logging
import re

_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,})")
_BEARER_PATTERN = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)
_secrets: set[str] = set()
_TRACEBACKS = logging.Formatter()


def register_secret(value: str) -> None:
    """Remember a secret so that `redact` removes it wherever it shows up."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """The text with every known secret, `sk-…` key and bearer token replaced by `[redacted]`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    text = _KEY_PATTERN.sub("[redacted]", text)
    return _BEARER_PATTERN.sub(r"\1[redacted]", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message and any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}\n{_TRACEBACKS.formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True
