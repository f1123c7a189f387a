"""GA Realtime client events (builders) and server events (parsing); no I/O here."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

# Audio travels as base64 both ways (a 100 ms delta is 6.4 kB of it): pybase64's SIMD codec does in ~1 µs what the
# standard library does in ~20, on the path from the socket to the speaker and from the microphone to the socket.
import pybase64

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
"""`audio/pcm` is 16-bit little-endian mono at 24 kHz, in and out."""

BYTES_PER_SAMPLE = 2


class MalformedServerEvent(ValueError):
    """A server message that is not a JSON object with a string `type`."""


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call, as declared in `session.update`."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True)
class SessionConfig:
    """What every new session is configured with."""

    model: str = "gpt-realtime-2.1"
    instructions: str = "You are AVA, a friendly and concise voice assistant on the user's desktop."
    voice: str = "marin"
    transcription_model: str = "gpt-4o-mini-transcribe"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    tools: tuple[ToolSpec, ...] = ()
    reasoning_effort: str | None = None
    """`minimal` … `xhigh` for a model that reasons (the 2 and 2.1 line); None: not sent."""
    retention_ratio: float | None = None
    """Truncation: when the context is full, keep this share of the conversation after the instructions."""
    context_limit_tokens: int | None = None
    """Truncation: the token limit after the instructions (bounded cost per turn, better cache hits)."""


def session_update(config: SessionConfig) -> dict[str, Any]:
    """The GA `session.update` (nested, with `session.type`)."""
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": config.model,
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": {"model": config.transcription_model},
                    "noise_reduction": {"type": "near_field"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": config.vad_threshold,
                        "prefix_padding_ms": config.vad_prefix_padding_ms,
                        "silence_duration_ms": config.vad_silence_duration_ms,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": pcm, "voice": config.voice},
            },
            "tools": [tool.to_json() for tool in config.tools],
            "tool_choice": "auto",
            **_cost_controls(config),
        },
    }


def tools_update(tools: tuple[ToolSpec, ...]) -> dict[str, Any]:
    """A `session.update` that changes only the declared tools (mid-session: the voice cannot change then)."""
    return {"type": "session.update",
            "session": {"type": "realtime", "tools": [tool.to_json() for tool in tools], "tool_choice": "auto"}}


def _cost_controls(config: SessionConfig) -> dict[str, Any]:
    """The optional session fields: reasoning effort and truncation (sent only when set)."""
    fields: dict[str, Any] = {}
    if config.reasoning_effort:
        fields["reasoning"] = {"effort": config.reasoning_effort}
    if config.retention_ratio is not None:
        truncation: dict[str, Any] = {"type": "retention_ratio", "retention_ratio": config.retention_ratio}
        if config.context_limit_tokens:
            truncation["token_limits"] = {"post_instructions": config.context_limit_tokens}
        fields["truncation"] = truncation
    return fields


def audio_codec() -> tuple[str, bool]:
    """Which base64 codec carries the audio, and whether it is the fast one (pybase64's C extension)."""
    version = pybase64.get_version()
    fast = "C extension active" in version
    return (f"base64 by pybase64 {version.split(' ')[0]}, C" if fast else
            f"base64 by pybase64's slow Python fallback ({version})"), fast


def input_audio_append(pcm: bytes) -> dict[str, Any]:
    """Append microphone PCM (24 kHz mono int16) to the input buffer."""
    return {"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(pcm)}


def item_truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    """Tell the server how much of an assistant audio item the user actually heard."""
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": max(0, int(audio_end_ms)),
    }


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    """Return a tool's result to the model."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """Re-create a function call in a session that did not see it (after a handover)."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
    }


def system_message(text: str) -> dict[str, Any]:
    """A system message item (e.g. "a reminder came due: say so")."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]},
    }


def response_create() -> dict[str, Any]:
    """Ask the model to respond (after a tool result, for instance)."""
    return {"type": "response.create"}


def encode(event: dict[str, Any]) -> str:
    """Serialise a client event for the socket."""
    return json.dumps(event, separators=(",", ":"))


def decode(message: str | bytes) -> dict[str, Any]:
    """Parse one server message; raise `MalformedServerEvent` if it is not a typed JSON object."""
    try:
        event = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedServerEvent(f"not JSON: {str(message)[:80]!r}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise MalformedServerEvent(f"no event type: {str(message)[:80]!r}")
    return event


def audio_delta_pcm(event: dict[str, Any]) -> bytes:
    """The PCM bytes of a `response.output_audio.delta`."""
    delta = event.get("delta")
    if not isinstance(delta, str):
        raise MalformedServerEvent("audio delta without base64 `delta`")
    try:
        return pybase64.b64decode(delta, validate=True)
    except ValueError as exc:
        raise MalformedServerEvent("audio delta is not valid base64") from exc


def error_code(event: dict[str, Any]) -> str | None:
    """The `error.code` of an `error` event (or its `type` when there is no code)."""
    error = event.get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code") or error.get("type")
    return str(code) if code else None


def error_message(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return "unknown error"


def pcm_duration_ms(pcm_bytes: int) -> float:
    """Milliseconds of 24 kHz mono int16 audio in `pcm_bytes` bytes."""
    return pcm_bytes / BYTES_PER_SAMPLE / SAMPLE_RATE * 1000.0
