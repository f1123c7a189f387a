"""The simulator's socket-free session model: client events and time in, server events and close decisions out.

No socket, no event loop and no sleeping: time is a number each call passes in.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ava_tray.simulator.faults import Fault
from ava_tray.simulator.model import (
    CHUNK_MS,
    SHUTDOWN,
    Abort,
    Action,
    Close,
    FunctionCall,
    GoSilent,
    InvalidState,
    Send,
    SendText,
    SessionModel,
    SessionState,
    SimulatedSession,
)
from ava_tray.simulator.server_events import expiry_reason

RATE = 24_000
T0 = 1000.0
LIMIT = 60.0

Event = dict[str, Any]


@dataclass
class Settings:
    """The server settings a model reads (what `RealtimeSimulator` provides)."""

    api_key: str | None = None
    session_limit: float = LIMIT
    expiry_error_first: bool = False
    reply_seconds: float | None = None
    reply_speed: float = 1.0
    speech_threshold: float = 500.0
    silence_ms: int = 500
    record_audio: bool = True
    reply_usage: dict[str, Any] | None = None
    refused_models: frozenset[str] = frozenset()
    azure: bool = False


def make_model(settings: Settings | None = None, *, calls: list[FunctionCall] | None = None,
               authorization: str | None = None) -> SessionModel:
    ids = itertools.count(1)
    queued = list(calls or [])
    record = SimulatedSession(id="sess_1", opened_at=T0, expires_at=1_900_000_000, authorization=authorization)
    return SessionModel(record, settings or Settings(), model_name="gpt-realtime-test",
                        new_id=lambda prefix: f"{prefix}_{next(ids)}",
                        next_function_call=lambda: queued.pop(0) if queued else None)


def started(settings: Settings | None = None, **kwargs: Any) -> SessionModel:
    model = make_model(settings, **kwargs)
    model.start()
    return model


def sent(actions: list[Action]) -> list[Event]:
    """The events among `actions`, asserting that nothing else is there."""
    assert all(isinstance(action, Send) for action in actions), actions
    return [action.event for action in actions if isinstance(action, Send)]


def types(actions: list[Action]) -> list[str]:
    return [event["type"] for event in sent(actions)]


def tone(seconds: float, amplitude: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220.0 * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def append(pcm: bytes) -> Event:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode("ascii")}


def speak(model: SessionModel, pcm: bytes, now: float = T0) -> list[Action]:
    """Feed `pcm` as 20 ms appends, all arriving at `now`; every action they caused."""
    step = RATE * 20 // 1000 * 2
    actions: list[Action] = []
    for offset in range(0, len(pcm), step):
        actions += model.receive(append(pcm[offset : offset + step]), now)
    return actions


def audio_ms(events: list[Event]) -> float:
    return sum(len(base64.b64decode(e["delta"])) / 2 / RATE * 1000
               for e in events if e["type"] == "response.output_audio.delta")


# -- opening --------------------------------------------------------------------------------------


def test_start_sends_session_created_and_sets_the_limit_deadline() -> None:
    model = make_model()
    assert model.state is SessionState.CONNECTING and model.next_deadline is None
    events = sent(model.start())
    assert [e["type"] for e in events] == ["session.created"]
    session = events[0]["session"]
    assert session["model"] == "gpt-realtime-test" and session["expires_at"] == 1_900_000_000
    assert isinstance(events[0]["event_id"], str)
    assert model.ready and model.idle and model.next_deadline == T0 + LIMIT


def test_a_wrong_key_is_closed_3000_without_session_created() -> None:
    model = make_model(Settings(api_key="sk-right"), authorization="Bearer sk-wrong")
    assert model.start() == [Close(3000, "invalid_request_error.invalid_api_key")]
    assert model.state is SessionState.CLOSING and model.record.close_code == 3000
    assert started(Settings(api_key="sk-right"), authorization="Bearer sk-right").ready


def test_the_beta_header_gets_its_error_then_4000() -> None:
    model = make_model()
    actions = model.start(beta_header=True)
    assert isinstance(actions[0], Send) and actions[0].event["error"]["code"] == "beta_api_shape_disabled"
    assert actions[1:] == [Close(4000, "invalid_request_error.beta_api_shape_disabled")]
    assert model.record.errors_sent == ["beta_api_shape_disabled"]


def test_events_before_start_are_an_invalid_state() -> None:
    with pytest.raises(InvalidState):
        make_model().receive({"type": "response.create"}, T0)


# -- configuration and errors ---------------------------------------------------------------------


def test_session_update_merges_and_is_answered_with_the_session_and_rate_limits() -> None:
    model = started()
    update = {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief.",
                                                    "audio": {"output": {"voice": "cedar"}}}}
    events = sent(model.receive(update, T0))
    assert [e["type"] for e in events] == ["session.updated", "rate_limits.updated"]
    session = events[0]["session"]
    assert session["instructions"] == "Be brief." and session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": RATE}
    assert model.record.session_updates == [update]


def test_a_beta_shaped_update_is_refused_naming_the_client_event() -> None:
    model = started()
    (error,) = sent(model.receive({"type": "session.update", "event_id": "evt_c1", "session": {}}, T0))
    assert error["error"]["code"] == "invalid_value" and error["error"]["event_id"] == "evt_c1"
    assert model.record.session_updates == [] and model.record.errors_sent == ["invalid_value"]


def test_text_that_is_not_a_client_event_gets_invalid_json_and_unknown_types_unknown_event() -> None:
    model = started()
    assert sent(model.receive_text("{not json", T0))[0]["error"]["code"] == "invalid_json"
    assert sent(model.receive_text("[1]", T0))[0]["error"]["code"] == "invalid_json"
    (error,) = sent(model.receive_text(json.dumps({"type": "session.teleport"}), T0))
    assert error["error"]["code"] == "unknown_event" and error["error"]["param"] == "type"
    assert [e["type"] for e in model.record.client_events] == ["session.teleport"]


def test_record_audio_false_keeps_appends_without_their_audio() -> None:
    model = started(Settings(record_audio=False))
    model.receive(append(silence(0.1)), T0)
    assert model.record.client_events[0]["audio"] == "<6400 base64 chars>"
    assert model.record.received_audio_ms == pytest.approx(100) and model.record.audio_arrivals == [(T0, 100.0)]


# -- turns and paced replies ------------------------------------------------------------------------


def test_a_speech_burst_is_a_turn_then_an_echo_reply_paced_by_time() -> None:
    model = started()
    actions = speak(model, tone(1.0) + silence(0.6))
    order = types(actions)
    assert order[:6] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                         "conversation.item.input_audio_transcription.completed"]
    assert order[6:] == ["response.created", "response.output_item.added", "conversation.item.added",
                         "response.content_part.added", "response.output_audio.delta",
                         "response.output_audio_transcript.delta"]
    assert model.next_deadline == pytest.approx(T0 + CHUNK_MS / 1000)  # one chunk a pace, at reply_speed 1
    assert not model.idle

    assert model.advance(T0 + 0.05) == []
    middle = sent(model.advance(T0 + 0.45))
    assert [e["type"] for e in middle].count("response.output_audio.delta") == 4
    rest = sent(model.advance(T0 + 5.0))
    assert rest[-1]["type"] == "response.done" and rest[-1]["response"]["status"] == "completed"
    assert audio_ms(sent(actions) + middle + rest) == pytest.approx(1000, abs=20)
    transcript = next(e for e in rest if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert transcript == "You said something for 1.0 seconds."
    assert model.record.replies_sent == 1 and model.idle and model.next_deadline == T0 + LIMIT


def test_speech_over_a_reply_cancels_it_with_turn_detected() -> None:
    model = started(Settings(reply_seconds=4.0))
    created = sent(model.receive({"type": "response.create"}, T0))
    item_id = created[-1]["item_id"]
    actions = speak(model, tone(0.2), T0 + 0.2)
    order = types(actions)
    assert order.index("input_audio_buffer.speech_started") < order.index("response.done")
    done = sent(actions)[order.index("response.done")]["response"]
    assert done["status"] == "cancelled" and done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    assert model.record.replies_cancelled == 1 and model.record.replies_sent == 0
    assert model.record.assistant_audio_ms == {item_id: 100.0}
    (truncated,) = sent(model.receive({"type": "conversation.item.truncate", "item_id": item_id,
                                       "content_index": 0, "audio_end_ms": 80}, T0 + 0.3))
    assert truncated["type"] == "conversation.item.truncated" and model.record.assistant_audio_ms[item_id] == 80
    (error,) = sent(model.receive({"type": "conversation.item.truncate", "item_id": item_id,
                                   "content_index": 0, "audio_end_ms": 500}, T0 + 0.3))
    assert error["error"]["param"] == "audio_end_ms"


def test_response_cancel_needs_the_active_response() -> None:
    model = started()
    assert sent(model.receive({"type": "response.cancel"}, T0))[0]["error"]["code"] == "response_cancel_not_active"
    response_id = sent(model.receive({"type": "response.create"}, T0))[0]["response"]["id"]
    wrong = sent(model.receive({"type": "response.cancel", "response_id": "resp_other"}, T0))
    assert wrong[0]["error"]["code"] == "response_cancel_not_active"
    busy = sent(model.receive({"type": "response.create"}, T0))
    assert busy[0]["error"]["code"] == "conversation_already_has_active_response"
    done = sent(model.receive({"type": "response.cancel", "response_id": response_id}, T0))
    assert [e["type"] for e in done] == ["response.done"]
    assert done[0]["response"]["status_details"]["reason"] == "client_cancelled" and model.idle


def test_commit_and_clear_of_the_input_buffer() -> None:
    model = started()
    empty = sent(model.receive({"type": "input_audio_buffer.commit"}, T0))
    assert empty[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    model.receive(append(silence(0.3)), T0)
    committed = types(model.receive({"type": "input_audio_buffer.commit"}, T0))
    assert committed == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                         "conversation.item.input_audio_transcription.completed"]
    model.receive(append(silence(0.1)), T0)
    assert types(model.receive({"type": "input_audio_buffer.clear"}, T0)) == ["input_audio_buffer.cleared"]


def test_a_queued_function_call_replaces_the_turn_reply_in_one_go() -> None:
    model = started(calls=[FunctionCall("get_time", {"zone": "UTC"})])
    order = types(speak(model, tone(0.3) + silence(0.6)))
    assert "response.output_audio.delta" not in order and order[-1] == "response.done"
    assert "response.function_call_arguments.done" in order
    call = model.record.function_calls[0]
    assert call["name"] == "get_time" and call["arguments"] == {"zone": "UTC"}
    assert model.idle and model.record.replies_sent == 1

    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "12:00"}
    added = types(model.receive({"type": "conversation.item.create", "item": output}, T0))
    assert added == ["conversation.item.added", "conversation.item.done"]
    assert model.record.function_outputs[0]["output"] == "12:00"


def test_an_output_for_a_call_this_session_never_made_is_refused() -> None:
    model = started()
    output = {"type": "function_call_output", "call_id": "call_elsewhere", "output": "{}"}
    (error,) = sent(model.receive({"type": "conversation.item.create", "item": output}, T0))
    assert error["error"]["code"] == "invalid_tool_call_id"


def test_items_are_chained_deleted_and_retrieved() -> None:
    model = started()
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi."}]}
    first = sent(model.receive({"type": "conversation.item.create", "item": message}, T0))[0]
    second = sent(model.receive({"type": "conversation.item.create", "item": message}, T0))[0]
    assert first["previous_item_id"] is None and second["previous_item_id"] == first["item"]["id"]
    root = sent(model.receive({"type": "conversation.item.create", "previous_item_id": "root", "item": message},
                              T0))[0]
    assert root["previous_item_id"] is None
    retrieved = sent(model.receive({"type": "conversation.item.retrieve", "item_id": first["item"]["id"]}, T0))
    assert retrieved[0]["item"]["id"] == first["item"]["id"]
    assert types(model.receive({"type": "conversation.item.delete", "item_id": first["item"]["id"]}, T0)) == [
        "conversation.item.deleted"]
    gone = sent(model.receive({"type": "conversation.item.retrieve", "item_id": first["item"]["id"]}, T0))
    assert gone[0]["error"]["code"] == "invalid_value"


def test_the_voice_cannot_change_once_audio_went_out() -> None:
    model = started(Settings(reply_seconds=0.1))
    model.receive({"type": "response.create"}, T0)
    update = {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}}
    assert sent(model.receive(update, T0))[0]["error"]["code"] == "cannot_update_voice"


def test_reply_with_audio_needs_an_idle_session() -> None:
    model = started()
    assert types(model.reply_with_audio(0.2, T0))[-1] == "response.output_audio_transcript.delta"
    with pytest.raises(InvalidState):
        model.reply_with_audio(0.2, T0)
    with pytest.raises(InvalidState):
        model.reply_with_function_call(FunctionCall("get_time", {}))
    assert types(model.advance(T0 + 1.0))[-1] == "response.done"
    assert model.record.speech_started == 0 and model.record.replies_sent == 1


# -- endings and faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("error_first", [False, True])
def test_the_session_limit_closes_1001_and_drops_a_reply_without_response_done(error_first: bool) -> None:
    model = started(Settings(session_limit=2.05, reply_seconds=5.0, expiry_error_first=error_first))
    model.receive({"type": "response.create"}, T0 + 1.0)
    actions = model.advance(T0 + 3.0)  # late: the chunks due before the limit still go first
    reason = expiry_reason(2.05)
    assert actions[-1] == Close(1001, reason)
    events = sent(actions[:-1])
    assert [e["type"] for e in events].count("response.output_audio.delta") == 10  # at 1.1 s to 2.0 s
    assert [e["error"]["code"] for e in events if e["type"] == "error"] == (["session_expired"] if error_first else [])
    assert "response.done" not in [e["type"] for e in events]
    assert model.record.close_code == 1001 and model.record.close_reason == reason
    assert model.next_deadline is None and model.advance(T0 + 10.0) == []


def test_client_events_after_the_close_count_but_get_no_answer() -> None:
    model = started()
    model.end(SHUTDOWN)
    assert model.receive(append(silence(0.1)), T0) == []
    assert model.receive({"type": "response.create"}, T0) == []
    assert model.record.received_audio_ms == pytest.approx(100) and len(model.record.client_events) == 2
    assert model.record.replies_sent == 0 and model.end(SHUTDOWN) == []


@pytest.mark.parametrize(("fault", "code", "reason", "error_code"), [
    (Fault.CLOSE_1011, 1011, "internal error", None),
    (Fault.CLOSE_4000, 4000, "invalid_request_error.beta_api_shape_disabled", "beta_api_shape_disabled"),
    (Fault.ERROR_QUOTA, 1000, "insufficient_quota", "insufficient_quota"),
    (Fault.EXPIRE_NOW, 1001, expiry_reason(LIMIT), None),
])
def test_closing_faults(fault: Fault, code: int, reason: str, error_code: str | None) -> None:
    model = started()
    actions = model.apply_fault(fault)
    assert actions[-1] == Close(code, reason)
    assert [e["error"]["code"] for e in sent(actions[:-1])] == ([error_code] if error_code else [])
    assert model.record.faults == [fault] and not model.ready


def test_drop_aborts_and_records_1006() -> None:
    model = started(Settings(reply_seconds=1.0))
    model.receive({"type": "response.create"}, T0)
    assert model.apply_fault(Fault.DROP) == [Abort()]
    assert model.record.close_code == 1006 and model.advance(T0 + 5.0) == []
    model.connection_closed(T0 + 0.1, 1006, "")
    assert model.record.closed_at == T0 + 0.1 and not model.record.open


def test_odd_frames_leave_the_session_open() -> None:
    model = started()
    malformed = model.apply_fault(Fault.MALFORMED_JSON, 2)
    assert len(malformed) == 2 and isinstance(malformed[0], SendText) and malformed[0] == malformed[1]
    with pytest.raises(ValueError):
        json.loads(malformed[0].text)
    unknown = sent(model.apply_fault(Fault.UNKNOWN_EVENT))
    assert unknown[0]["type"] == "future.unknown_event" and isinstance(unknown[0]["event_id"], str)
    assert model.ready


def test_half_open_reads_and_sends_nothing_until_the_peer_leaves_or_the_limit() -> None:
    model = started(Settings(reply_seconds=1.0))
    model.receive({"type": "response.create"}, T0)
    assert model.apply_fault(Fault.HALF_OPEN) == [GoSilent()]
    assert not model.ready and model.apply_fault(Fault.CLOSE_1011) == []
    assert model.receive({"type": "response.create"}, T0) == [] and model.advance(T0 + 1.0) == []
    assert model.next_deadline == T0 + LIMIT  # the limit still ends it
    assert model.advance(T0 + LIMIT) == [Abort()]
    assert model.record.close_code == 1006

    other = started()
    other.apply_fault(Fault.HALF_OPEN)
    assert other.peer_left() == [Abort()] and other.peer_left() == []


def test_the_observed_close_is_kept_only_when_the_server_chose_none() -> None:
    client_closed = started()
    client_closed.connection_closed(T0 + 1.0, 1000, "bye")
    assert (client_closed.record.close_code, client_closed.record.close_reason) == (1000, "bye")
    assert client_closed.state is SessionState.CLOSED
    server_closed = started()
    server_closed.apply_fault(Fault.CLOSE_1011)
    server_closed.connection_closed(T0 + 1.0, 1006, "")
    assert (server_closed.record.close_code, server_closed.record.close_reason) == (1011, "internal error")
