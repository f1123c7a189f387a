"""The GA server events and payloads the simulator sends, built from plain values (no state, no I/O)."""

from __future__ import annotations

import copy
from typing import Any

from ava_tray.realtime.events import SAMPLE_RATE

Event = dict[str, Any]

PCM_FORMAT: Event = {"type": "audio/pcm", "rate": SAMPLE_RATE}
DEFAULT_VOICE = "marin"


def expiry_reason(limit_seconds: float) -> str:
    """OpenAI's close reason at the session limit: `... of 60 minutes.`, or seconds when not whole minutes."""
    if limit_seconds >= 60 and float(limit_seconds) % 60 == 0:
        count, unit = f"{int(limit_seconds // 60)}", "minute"
    else:
        count, unit = f"{limit_seconds:g}", "second"
    plural = "" if count == "1" else "s"
    return f"Your session hit the maximum duration of {count} {unit}{plural}."


def error_event(code: str, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                event_id: str | None = None) -> Event:
    """A GA `error` server event."""
    return {"type": "error",
            "error": {"type": type_, "code": code, "message": message, "param": param, "event_id": event_id}}


def default_session(session_id: str, model: str, expires_at: float, silence_ms: int) -> Event:
    """The session a new connection starts with, as `session.created` shows it."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "expires_at": int(expires_at),
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "truncation": "auto",
        "include": None,
        "audio": {
            "input": {
                "format": dict(PCM_FORMAT),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": silence_ms,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(PCM_FORMAT), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
    }


def merge_session(base: Event, update: Event) -> Event:
    """Deep-merge `update` into a copy of `base` (dicts merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_session(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def session_event(type_: str, session: Event) -> Event:
    """`session.created` or `session.updated` carrying a copy of `session`."""
    return {"type": type_, "session": copy.deepcopy(session)}


def rate_limits_event() -> Event:
    """The `rate_limits.updated` that follows every `session.updated`."""
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
        {"name": "tokens", "limit": 200000, "remaining": 199500, "reset_seconds": 0.15}]}


def response_body(response_id: str, status: str, output: list[Event], *, audio_ms: float, voice: str,
                  status_details: Event | None = None) -> Event:
    """The `response` object of `response.created` and `response.done` (usage once it is not in progress)."""
    audio_tokens = int(audio_ms / 50)
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": "conv_simulator",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": dict(PCM_FORMAT), "voice": voice}},
        "usage": None if status == "in_progress" else {
            "total_tokens": 20 + audio_tokens, "input_tokens": 10, "output_tokens": 10 + audio_tokens,
            "input_token_details": {"text_tokens": 5, "audio_tokens": 5, "cached_tokens": 0},
            "output_token_details": {"text_tokens": 10, "audio_tokens": audio_tokens},
        },
        "metadata": None,
    }
