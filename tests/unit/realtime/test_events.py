"""Client events are the GA shape: every one validates against the official SDK's types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from ava_tray.realtime import events

SDK = TypeAdapter(RealtimeClientEvent)


def assert_valid_client_event(event: dict[str, Any]) -> None:
    SDK.validate_python(event)


def test_session_update_is_ga_shape_and_validates() -> None:
    tool = events.ToolSpec("get_time", "Tell the time", {"type": "object", "properties": {}})
    event = events.session_update(events.SessionConfig(voice="cedar", tools=(tool,)))
    assert_valid_client_event(event)
    session = event["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["tools"][0]["name"] == "get_time"
    assert "OpenAI-Beta" not in events.encode(event)


@pytest.mark.parametrize("event", [
    events.input_audio_append(b"\x00\x01" * 480),
    events.item_truncate("item_1", 1234),
    events.function_call_output("call_1", '{"ok": true}'),
    events.response_create(),
    events.function_call_item("call_1", "get_time", "{}"),
    events.system_message("A reminder came due: stretch. Tell the user."),
])
def test_client_events_validate(event: dict[str, Any]) -> None:
    assert_valid_client_event(event)


def test_encoded_events_read_back_unchanged_whatever_the_language() -> None:
    event = events.system_message("Rappel : café à 15 h, 東京の会議, 🎉, a quote \" and a backslash \\.")
    text = events.encode(event)
    assert json.loads(text) == event
    assert events.decode(text.replace('"conversation.item.create"', '"x"'))["item"] == event["item"]
    assert ", " not in text.split('"content"')[0], "compact: no spaces between fields"


def test_truncate_never_negative() -> None:
    assert events.item_truncate("i", -5)["audio_end_ms"] == 0


@pytest.mark.parametrize("message", ["{not json", "[]", '{"no_type": 1}', '{"type": 5}', b"\xff\xfe",
                                     '{"type": "x"} trailing', ""])
def test_malformed_messages_raise_a_clear_error(message: str | bytes) -> None:
    with pytest.raises(events.MalformedServerEvent):
        events.decode(message)


def test_audio_delta_round_trip_and_bad_base64() -> None:
    pcm = bytes(range(256)) * 4
    append = events.input_audio_append(pcm)
    assert events.audio_delta_pcm({"type": "x", "delta": append["audio"]}) == pcm
    with pytest.raises(events.MalformedServerEvent):
        events.audio_delta_pcm({"type": "x", "delta": "@@not base64@@"})


def test_error_code_and_duration() -> None:
    assert events.error_code({"type": "error", "error": {"code": "session_expired"}}) == "session_expired"
    assert events.error_code({"type": "error"}) is None
    assert events.pcm_duration_ms(48_000) == pytest.approx(1000.0)
