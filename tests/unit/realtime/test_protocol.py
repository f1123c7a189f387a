"""The socket-free server session protocol: server events in, intents out, client events queued. No socket."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from ava_tray.realtime import events
from ava_tray.realtime.protocol import (
    TRANSITIONS,
    BargeIn,
    Configure,
    Fatal,
    Heard,
    InvalidState,
    PlayAudio,
    Ready,
    ResponseFinished,
    ResponseStarted,
    RunTool,
    ServerError,
    ServerSessionProtocol,
    State,
    TurnEnded,
)

CLIENT_EVENT = TypeAdapter(RealtimeClientEvent)
CREATED_AT = 1_700_000_000.0
EXPIRES_AT = 1_700_003_600


def session_created(expires_at: object = EXPIRES_AT) -> dict[str, Any]:
    return {"type": "session.created", "session": {"type": "realtime", "expires_at": expires_at}}


def error(code: str | None, message: str = "it went wrong") -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}


def sent(protocol: ServerSessionProtocol) -> list[dict[str, Any]]:
    """The client events queued since the last look, decoded and checked against the official SDK's types."""
    decoded = [json.loads(message.text) for message in protocol.data_to_send()]
    for event in decoded:
        CLIENT_EVENT.validate_python(event)
    return decoded


def kinds(client_events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] if event["type"] != "conversation.item.create" else f"item:{event['item']['type']}"
            for event in client_events]


def created() -> ServerSessionProtocol:
    protocol = ServerSessionProtocol(lambda: CREATED_AT)
    assert protocol.receive(session_created()) == [Configure(float(EXPIRES_AT))]
    return protocol


def opened(replay: dict[str, Any] | None = None) -> ServerSessionProtocol:
    protocol = created()
    protocol.configure(events.SessionConfig(), replay)
    protocol.data_to_send()
    assert protocol.receive({"type": "session.updated", "session": {}}) == [Ready(float(EXPIRES_AT))]
    return protocol


# -- configuring ----------------------------------------------------------------------------------

def test_a_session_is_configured_with_its_settings_then_the_conversation_so_far() -> None:
    clock = iter([10.0, CREATED_AT])
    protocol = ServerSessionProtocol(lambda: next(clock))
    assert protocol.state is State.CONNECTING and protocol.created_at == 10.0
    assert protocol.receive({"type": "rate_limits.updated"}) == []

    assert protocol.receive(session_created()) == [Configure(float(EXPIRES_AT))]
    assert protocol.state is State.CREATED
    assert (protocol.created_at, protocol.expires_at) == (CREATED_AT, EXPIRES_AT)
    assert sent(protocol) == [], "nothing is sent before AVA configures"

    replay = events.system_message("User: hello\nAVA: hi")
    protocol.configure(events.SessionConfig(voice="cedar"), replay)
    assert protocol.state is State.CONFIGURING and not protocol.is_open
    update, replayed = sent(protocol)
    assert update["type"] == "session.update" and update["session"]["audio"]["output"]["voice"] == "cedar"
    assert replayed == replay

    assert protocol.receive({"type": "session.updated", "session": {}}) == [Ready(float(EXPIRES_AT))]
    assert protocol.state is State.OPEN and protocol.is_open


def test_without_a_conversation_so_far_only_the_settings_are_sent() -> None:
    protocol = created()
    protocol.configure(events.SessionConfig())
    assert kinds(sent(protocol)) == ["session.update"]


@pytest.mark.parametrize("expires_at", [None, "soon", [1]])
def test_a_session_without_a_usable_expiry_has_none(expires_at: object) -> None:
    protocol = ServerSessionProtocol(lambda: CREATED_AT)
    assert protocol.receive(session_created(expires_at)) == [Configure(None)]
    assert protocol.expires_at is None


def test_a_second_session_created_or_an_early_session_updated_changes_nothing() -> None:
    protocol = ServerSessionProtocol(lambda: CREATED_AT)
    assert protocol.receive({"type": "session.updated", "session": {}}) == []
    assert protocol.state is State.CONNECTING
    protocol.receive(session_created())
    assert protocol.receive(session_created(EXPIRES_AT + 60)) == []
    assert protocol.state is State.CREATED and protocol.expires_at == EXPIRES_AT
    protocol.configure(events.SessionConfig())
    protocol.receive({"type": "session.updated"})
    assert protocol.receive({"type": "session.updated"}) == [], "ready only once"


# -- illegal use ----------------------------------------------------------------------------------

def test_configuring_is_legal_only_right_after_session_created() -> None:
    protocol = ServerSessionProtocol(lambda: CREATED_AT)
    with pytest.raises(InvalidState, match="connecting"):
        protocol.configure(events.SessionConfig())
    assert protocol.state is State.CONNECTING and sent(protocol) == []
    protocol = opened()
    with pytest.raises(InvalidState, match="open"):
        protocol.configure(events.SessionConfig())
    assert protocol.state is State.OPEN and sent(protocol) == []


@pytest.mark.parametrize("state", [State.CONNECTING, State.CREATED, State.CONFIGURING, State.CLOSING, State.CLOSED])
def test_client_events_are_refused_unless_the_session_is_open(state: State) -> None:
    protocol = in_state(state)
    calls = [lambda: protocol.send_audio(b"\0\0", 1.0), lambda: protocol.truncate("item_1", 10),
             lambda: protocol.answer_tool(RunTool("call_1", "get_time", "{}"), "{}"), lambda: protocol.say("hi")]
    for call in calls:
        with pytest.raises(InvalidState):
            call()
    assert protocol.state is state and sent(protocol) == []


def test_nothing_is_received_once_closed() -> None:
    protocol = opened()
    protocol.connection_closed()
    with pytest.raises(InvalidState, match="closed"):
        protocol.receive({"type": "response.created"})
    assert protocol.state is State.CLOSED


def in_state(state: State) -> ServerSessionProtocol:
    if state is State.CONNECTING:
        return ServerSessionProtocol(lambda: CREATED_AT)
    if state is State.CREATED:
        return created()
    if state is State.CONFIGURING:
        protocol = created()
        protocol.configure(events.SessionConfig())
        protocol.data_to_send()
        return protocol
    protocol = opened()
    if state is State.CLOSING:
        protocol.close()
    elif state is State.CLOSED:
        protocol.close()
        protocol.connection_closed()
    return protocol


def test_the_transitions_only_ever_move_forward_and_closed_is_final() -> None:
    for (state, _), target in TRANSITIONS.items():
        assert target > state
    assert not any(state is State.CLOSED for state, _ in TRANSITIONS)


def test_closing_is_idempotent_and_stops_sending_but_not_receiving() -> None:
    protocol = opened()
    protocol.send_audio(b"\1\0", 1.0)
    protocol.close()
    protocol.close()
    assert protocol.state is State.CLOSING and not protocol.is_open
    assert protocol.receive({"type": "response.done", "response": {}}) == [ResponseFinished()]
    protocol.connection_closed()
    protocol.connection_closed()
    protocol.close()
    assert protocol.state is State.CLOSED
    assert sent(protocol) == [], "what was queued is dropped with the socket"


# -- what server events mean ----------------------------------------------------------------------

def test_assistant_audio_is_played_per_item() -> None:
    protocol = opened()
    pcm = bytes(range(10))
    delta = {"type": "response.output_audio.delta", "item_id": "item_7", "delta": base64.b64encode(pcm).decode()}
    assert protocol.receive(delta) == [PlayAudio("item_7", pcm)]


@pytest.mark.parametrize("delta", [None, "not base64!"])
def test_a_malformed_audio_delta_is_ignored(delta: object) -> None:
    protocol = opened()
    assert protocol.receive({"type": "response.output_audio.delta", "item_id": "item_7", "delta": delta}) == []
    assert protocol.is_open


def test_speech_barges_in_and_the_user_speaking_flag_follows_the_server_vad() -> None:
    protocol = opened()
    assert protocol.receive({"type": "input_audio_buffer.speech_started", "item_id": "item_1"}) == [BargeIn()]
    assert protocol.user_speaking
    assert protocol.receive({"type": "input_audio_buffer.speech_stopped"}) == [TurnEnded()]
    assert not protocol.user_speaking
    protocol.receive({"type": "input_audio_buffer.speech_started"})
    assert protocol.receive({"type": "input_audio_buffer.timeout_triggered"}) == [TurnEnded()]
    assert not protocol.user_speaking


def test_a_response_is_running_from_created_to_done() -> None:
    protocol = opened()
    assert not protocol.response_active
    assert protocol.receive({"type": "response.created", "response": {}}) == [ResponseStarted()]
    assert protocol.response_active
    cancelled = {"type": "response.done", "response": {"status": "cancelled"}}
    assert protocol.receive(cancelled) == [ResponseFinished("cancelled")]
    assert not protocol.response_active


def test_a_tool_call_is_run_once_its_arguments_are_done() -> None:
    protocol = opened()
    assert protocol.receive({"type": "response.function_call_arguments.delta", "call_id": "call_1",
                             "delta": "{"}) == []
    done = {"type": "response.function_call_arguments.done", "call_id": "call_1", "name": "get_time",
            "arguments": '{"time_zone": "UTC"}'}
    assert protocol.receive(done) == [RunTool("call_1", "get_time", '{"time_zone": "UTC"}')]
    assert protocol.receive(dict(done, call_id="")) == [], "a call without an id cannot be answered"


def test_finished_transcripts_are_heard() -> None:
    protocol = opened()
    assert protocol.receive({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i",
                             "transcript": "what time is it"}) == [Heard("user", "what time is it")]
    assert protocol.receive({"type": "response.output_audio_transcript.done", "transcript": "Noon."}) == [
        Heard("assistant", "Noon.")]
    assert protocol.receive({"type": "response.output_audio_transcript.delta", "delta": "No"}) == []


def test_most_errors_leave_the_session_open_and_their_codes_are_kept() -> None:
    protocol = opened()
    assert protocol.receive(error("invalid_value", "bad item")) == [ServerError("invalid_value", "bad item")]
    assert protocol.receive({"type": "error", "error": {"message": "no code"}}) == [ServerError(None, "no code")]
    assert protocol.receive(error("session_expired")) == [ServerError("session_expired", "it went wrong")]
    assert protocol.error_codes == ["invalid_value", "session_expired"]
    assert protocol.is_open


@pytest.mark.parametrize("code", ["invalid_api_key", "insufficient_quota", "beta_api_shape_disabled"])
def test_a_fatal_error_closes_the_session_once(code: str) -> None:
    protocol = opened()
    assert protocol.receive(error(code)) == [ServerError(code, "it went wrong"), Fatal(code)]
    assert protocol.state is State.CLOSING and protocol.error_codes == [code]
    assert protocol.receive(error(code)) == [ServerError(code, "it went wrong")], "closing already"


def test_a_fatal_error_before_the_session_is_configured_closes_it_too() -> None:
    protocol = ServerSessionProtocol(lambda: CREATED_AT)
    assert protocol.receive(error("beta_api_shape_disabled"))[-1] == Fatal("beta_api_shape_disabled")
    assert protocol.receive(session_created()) == [], "no configuring a session that is closing"
    assert protocol.state is State.CLOSING


@pytest.mark.parametrize("kind", ["future.unknown_event", "conversation.item.added", "rate_limits.updated"])
def test_other_events_mean_nothing(kind: str) -> None:
    protocol = opened()
    assert protocol.receive({"type": kind}) == []
    assert protocol.state is State.OPEN and sent(protocol) == []


# -- what AVA sends -------------------------------------------------------------------------------

def test_microphone_blocks_go_out_in_order_with_their_capture_time() -> None:
    protocol = opened()
    protocol.send_audio(b"\1\0", 1.5)
    protocol.send_audio(b"\2\0", 1.52)
    messages = protocol.data_to_send()
    assert [m.captured_at for m in messages] == [1.5, 1.52]
    assert [base64.b64decode(json.loads(m.text)["audio"]) for m in messages] == [b"\1\0", b"\2\0"]
    assert protocol.data_to_send() == []


def test_a_barge_in_tells_the_server_how_much_was_heard() -> None:
    protocol = opened()
    protocol.truncate("item_7", 640)
    assert sent(protocol) == [{"type": "conversation.item.truncate", "item_id": "item_7", "content_index": 0,
                               "audio_end_ms": 640}]


def test_a_tool_answer_asks_for_the_reply_and_recreates_a_call_from_a_handed_over_session() -> None:
    protocol = opened()
    call = RunTool("call_1", "get_time", '{"time_zone": "UTC"}')
    protocol.answer_tool(call, '{"iso": "noon"}')
    assert kinds(sent(protocol)) == ["item:function_call_output", "response.create"]

    protocol.answer_tool(call, '{"iso": "noon"}', recreate_call=True)
    recreated, output, _ = events_sent = sent(protocol)
    assert kinds(events_sent) == ["item:function_call", "item:function_call_output", "response.create"]
    assert recreated["item"] == {"type": "function_call", "call_id": "call_1", "name": "get_time",
                                 "arguments": '{"time_zone": "UTC"}'}
    assert output["item"] == {"type": "function_call_output", "call_id": "call_1", "output": '{"iso": "noon"}'}


def test_saying_something_is_a_system_message_and_a_response() -> None:
    protocol = opened()
    protocol.say("A reminder came due: stretch.")
    message, _ = events_sent = sent(protocol)
    assert kinds(events_sent) == ["item:message", "response.create"]
    assert message["item"]["role"] == "system" and "stretch" in message["item"]["content"][0]["text"]


def test_usage_is_reported_and_a_server_error_renews_the_session_once() -> None:
    from ava_tray.pricing import Usage
    from ava_tray.realtime.protocol import RenewSession, Used

    protocol = opened()
    done = {"type": "response.done", "response": {"status": "completed", "usage": {
        "input_tokens": 30, "output_tokens": 20, "input_token_details": {"text_tokens": 10, "audio_tokens": 20},
        "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}}}
    assert protocol.receive(done) == [ResponseFinished(), Used(Usage(text_in=10, audio_in=20, text_out=5,
                                                                     audio_out=15))]
    heard = {"type": "conversation.item.input_audio_transcription.completed", "transcript": "hi",
             "usage": {"type": "duration", "seconds": 2.0}}
    assert protocol.receive(heard) == [Heard("user", "hi"), Used(Usage(transcription_seconds=2.0))]
    failed = {"type": "response.done", "response": {"status": "failed", "status_details": {
        "type": "failed", "error": {"type": "server_error", "code": "server_error"}}}}
    assert protocol.receive(failed) == [ResponseFinished("failed", "server_error"), RenewSession("server_error")]
    error = {"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "boom"}}
    assert protocol.receive(error) == [ServerError("server_error", "boom")], "renewed once, not at every failure"


def test_a_refused_model_is_fatal_whatever_code_the_server_gives() -> None:
    protocol = opened()
    refused = {"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
                                          "param": "session.model", "message": "Unknown model."}}
    assert protocol.receive(refused) == [ServerError("invalid_model", "Unknown model."), Fatal("invalid_model")]


def test_a_session_created_without_expires_at_ends_at_the_provider_s_known_limit() -> None:
    from ava_tray.realtime.providers import SESSION_LIMIT_S, Provider

    azure = ServerSessionProtocol(lambda: 1_000.0, known_limit=SESSION_LIMIT_S[Provider.AZURE])
    assert azure.receive({"type": "session.created", "session": {}}) == [Configure(1_000.0 + 1800.0)]
    unknown = ServerSessionProtocol(lambda: 1_000.0, known_limit=SESSION_LIMIT_S[Provider.CUSTOM])
    assert unknown.receive({"type": "session.created", "session": {}}) == [Configure(None)], "not guessed"
    said = ServerSessionProtocol(lambda: 1_000.0, known_limit=1800.0)
    assert said.receive({"type": "session.created", "session": {"expires_at": 4_600}}) == [Configure(4_600.0)]
