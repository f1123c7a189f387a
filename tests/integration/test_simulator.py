"""The Realtime simulator over real loopback WebSockets: GA events, turns, replies, endings and faults.

Every client event a test sends is checked against the official SDK's schema (events that are meant to be
invalid are checked to fail it), and every server event received is checked against the SDK's server schema.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from ava_tray.simulator import Fault, RealtimeSimulator, expiry_reason, synthetic_voice

CLIENT_EVENTS: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)
SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
RATE = 24_000
TIMEOUT = 5.0

Event = dict[str, Any]


def tone(seconds: float, amplitude: float = 8000.0, hz: float = 220.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def append(pcm: bytes) -> Event:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode("ascii")}


def session_update(**extra: Any) -> Event:
    pcm = {"type": "audio/pcm", "rate": RATE}
    session: Event = {
        "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"], "instructions": "Be brief.",
        "audio": {"input": {"format": pcm, "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
                  "output": {"format": pcm, "voice": "marin"}},
    }
    session.update(extra)
    return {"type": "session.update", "session": session}


class Client:
    """A real `websockets` client that checks every event against the SDK's schemas."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, event: Event) -> None:
        CLIENT_EVENTS.validate_python(event)
        await self.ws.send(json.dumps(event))

    async def send_invalid(self, text: str) -> None:
        """Send something the SDK itself would refuse (checked), to see the server cope."""
        with pytest.raises((ValidationError, ValueError)):
            CLIENT_EVENTS.validate_python(json.loads(text))
        await self.ws.send(text)

    async def send_audio(self, pcm: bytes, chunk_ms: int = 20) -> None:
        step = RATE * chunk_ms // 1000 * 2
        for offset in range(0, len(pcm), step):
            await self.send(append(pcm[offset : offset + step]))

    async def recv(self, timeout: float = TIMEOUT) -> Event:
        event: Event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        assert isinstance(event.get("event_id"), str)
        if event["type"] != "future.unknown_event":
            SERVER_EVENTS.validate_python(event)
        return event

    async def until(self, type_: str, timeout: float = TIMEOUT) -> list[Event]:
        """Every event up to and including the first of `type_`."""
        events: list[Event] = []
        async with asyncio.timeout(timeout):
            while not events or events[-1]["type"] != type_:
                events.append(await self.recv())
        return events


def types(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


def audio_ms(events: list[Event]) -> float:
    return sum(len(base64.b64decode(e["delta"])) / 2 / RATE * 1000
               for e in events if e["type"] == "response.output_audio.delta")


@pytest.fixture
async def simulator() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator() as sim:
        yield sim


async def open_client(sim: RealtimeSimulator, **kwargs: Any) -> Client:
    kwargs.setdefault("close_timeout", 1.0)
    client = Client(await connect(sim.url, compression=None, **kwargs))
    created = await client.recv()
    assert created["type"] == "session.created"
    return client


# -- session -------------------------------------------------------------------------------------


async def test_session_created_carries_the_deadline_and_ga_shape() -> None:
    async with RealtimeSimulator(session_limit=3600) as sim, connect(sim.url) as ws:
        event = await Client(ws).recv()
    assert event["type"] == "session.created"
    session = event["session"]
    assert session["type"] == "realtime" and session["object"] == "realtime.session"
    assert session["model"] == "gpt-realtime" and session["output_modalities"] == ["audio"]
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": RATE}
    assert abs(session["expires_at"] - (time.time() + 3600)) <= 2
    assert sim.sessions[0].expires_at == session["expires_at"]


async def test_session_update_is_stored_and_answered_with_the_merged_session(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    update = session_update(instructions="Answer in one sentence.",
                            tools=[{"type": "function", "name": "now", "description": "The time.",
                                    "parameters": {"type": "object", "properties": {}}}])
    await client.send(update)
    events = await client.until("session.updated")
    updated = events[-1]["session"]
    assert updated["instructions"] == "Answer in one sentence."
    assert updated["tools"][0]["name"] == "now"
    assert updated["audio"]["output"]["voice"] == "marin"
    assert (await client.recv())["type"] == "rate_limits.updated"
    assert simulator.sessions[0].session_updates == [update]
    await client.ws.close()


async def test_beta_shaped_session_update_gets_an_error_and_the_session_goes_on(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.send_invalid(json.dumps({"type": "session.update", "session": {"modalities": ["audio"]}}))
    error = await client.recv()
    assert error["type"] == "error" and error["error"]["code"] == "invalid_value"
    await client.send(session_update())
    assert (await client.recv())["type"] == "session.updated"
    await client.ws.close()


# -- turns and replies -----------------------------------------------------------------------------


async def test_speech_burst_gives_a_turn_and_an_echo_reply(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.send(session_update())
    await client.until("session.updated")
    await client.send_audio(tone(1.0) + silence(0.7))
    events = await client.until("response.done")
    order = types(events)
    for expected in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                     "input_audio_buffer.committed", "conversation.item.added",
                     "conversation.item.input_audio_transcription.completed", "response.created",
                     "response.output_item.added", "response.content_part.added", "response.output_audio.delta",
                     "response.output_audio_transcript.done", "response.output_audio.done",
                     "response.content_part.done", "response.output_item.done", "response.done"):
        assert expected in order, expected
    assert order.index("input_audio_buffer.speech_stopped") < order.index("response.created")
    started = events[order.index("input_audio_buffer.speech_started")]
    stopped = events[order.index("input_audio_buffer.speech_stopped")]
    assert started["audio_start_ms"] <= 20 and abs(stopped["audio_end_ms"] - 1000) <= 20
    assert started["item_id"] == stopped["item_id"]
    transcript = events[order.index("conversation.item.input_audio_transcription.completed")]
    assert transcript["transcript"] == "(1.0 s of speech)"
    assert abs(audio_ms(events) - 1000) <= 40
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["type"] == "output_audio"
    session = simulator.sessions[0]
    assert abs(session.received_audio_ms - 1700) < 1 and len(session.audio_arrivals) == 85
    assert session.speech_started == 1 and session.replies_sent == 1
    await client.ws.close()


async def test_response_create_without_a_turn_speaks_a_generated_voice() -> None:
    async with RealtimeSimulator(reply_seconds=0.6) as sim:
        sim.reply_speed = 20.0
        client = await open_client(sim)
        await client.send({"type": "response.create"})
        events = await client.until("response.done")
        assert abs(audio_ms(events) - 600) <= 1
        pcm = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
        assert pcm == synthetic_voice(0.6)
        peak = np.abs(np.frombuffer(pcm, dtype="<i2")).max()
        assert 4000 < peak <= 8000
        await client.ws.close()


async def test_barge_in_cancels_the_reply_and_truncate_is_answered() -> None:
    async with RealtimeSimulator(reply_seconds=4.0) as sim:
        client = await open_client(sim)
        await client.send({"type": "response.create"})
        events = await client.until("response.output_audio.delta")
        item_id = events[-1]["item_id"]
        await client.send_audio(tone(0.2))
        events = await client.until("response.done")
        order = types(events)
        assert order.index("input_audio_buffer.speech_started") < order.index("response.done")
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert audio_ms(events) < 2000
        assert sim.sessions[0].replies_cancelled == 1 and sim.sessions[0].replies_sent == 0
        await client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                           "audio_end_ms": 100})
        truncated = (await client.until("conversation.item.truncated"))[-1]
        assert truncated["audio_end_ms"] == 100 and sim.sessions[0].truncates[0]["item_id"] == item_id
        await client.ws.close()


async def test_response_cancel_stops_the_reply(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.send({"type": "response.create"})
    created = (await client.until("response.output_audio.delta"))[0]
    await client.send({"type": "response.cancel", "response_id": created["response"]["id"]})
    done = (await client.until("response.done"))[-1]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    await client.send({"type": "response.cancel"})
    assert (await client.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
    await client.ws.close()


async def test_items_commit_and_clear_are_answered(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.send({"type": "conversation.item.create", "previous_item_id": "root", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Earlier we spoke."}]}})
    added = (await client.until("conversation.item.done"))[0]
    assert added["type"] == "conversation.item.added"
    item_id = added["item"]["id"]
    await client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert (await client.recv())["type"] == "conversation.item.deleted"
    await client.send({"type": "input_audio_buffer.commit"})
    assert (await client.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
    await client.send(append(silence(0.3)))
    await client.send({"type": "input_audio_buffer.commit"})
    events = await client.until("conversation.item.input_audio_transcription.completed")
    assert types(events)[0] == "input_audio_buffer.committed"
    await client.send(append(silence(0.1)))
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    await client.ws.close()


async def test_function_call_round_trip(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.send(session_update(tools=[{"type": "function", "name": "get_time", "description": "Time now.",
                                             "parameters": {"type": "object", "properties": {}}}]))
    await client.until("rate_limits.updated")
    simulator.request_function_call("get_time", {"zone": "UTC"})
    events = await client.until("response.done")
    assert "response.output_audio.delta" not in types(events)
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call"
    call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert call["name"] == "get_time" and json.loads(call["arguments"]) == {"zone": "UTC"}
    assert events[-1]["response"]["status"] == "completed"
    await client.send({"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "12:00"}})
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert types(events)[:2] == ["conversation.item.added", "conversation.item.done"]
    assert audio_ms(events) > 0 and events[-1]["response"]["status"] == "completed"
    session = simulator.sessions[0]
    assert session.function_calls == [{"call_id": call["call_id"], "name": "get_time", "arguments": {"zone": "UTC"}}]
    assert session.function_outputs[0]["output"] == "12:00"
    await client.ws.close()


async def test_an_output_for_a_call_this_session_never_made_is_refused_as_by_openai(
        simulator: RealtimeSimulator) -> None:
    """What a client that forgets to re-create a call in a new session would get."""
    client = await open_client(simulator)
    output = {"type": "function_call_output", "call_id": "call_from_another_session", "output": "{}"}
    await client.send({"type": "conversation.item.create", "item": output})
    error = await client.recv()
    assert error["type"] == "error" and error["error"]["code"] == "invalid_tool_call_id"
    assert "call_from_another_session" in error["error"]["message"]
    await client.send({"type": "conversation.item.create", "item": {
        "type": "function_call", "call_id": "call_from_another_session", "name": "get_time", "arguments": "{}"}})
    assert (await client.recv())["type"] == "conversation.item.added"
    assert (await client.recv())["type"] == "conversation.item.done"
    await client.send({"type": "conversation.item.create", "item": output})
    added = await client.recv()
    assert added["type"] == "conversation.item.added" and added["item"]["call_id"] == "call_from_another_session"
    assert simulator.sessions[0].errors_sent == ["invalid_tool_call_id"]
    assert len(simulator.sessions[0].function_outputs) == 1
    await client.ws.close()


async def test_a_queued_function_call_replaces_the_next_reply(simulator: RealtimeSimulator) -> None:
    simulator.request_function_call("lights", {"on": True})
    client = await open_client(simulator)
    await client.send_audio(tone(0.3) + silence(0.6))
    events = await client.until("response.done")
    assert "response.function_call_arguments.done" in types(events)
    assert "response.output_audio.delta" not in types(events)
    await client.ws.close()


async def test_request_reply_sends_audio_without_a_user_turn(simulator: RealtimeSimulator) -> None:
    assert not simulator.request_reply(0.2)  # no session yet
    client = await open_client(simulator)
    await client.send(session_update())
    await client.until("rate_limits.updated")
    assert simulator.request_reply(0.2)
    assert not simulator.request_reply(0.2)  # one reply at a time
    events = await client.until("response.done")
    assert 190 <= audio_ms(events) <= 210 and events[-1]["response"]["status"] == "completed"
    assert simulator.sessions[0].speech_started == 0
    await client.ws.close()


async def test_malformed_and_unknown_client_events_get_errors(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    await client.ws.send("{not json")
    assert (await client.recv())["error"]["code"] == "invalid_json"
    await client.send_invalid(json.dumps({"type": "session.teleport"}))
    error = (await client.recv())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_event"
    await client.send(session_update())
    assert (await client.recv())["type"] == "session.updated"
    await client.ws.close()


# -- endings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("error_first", [False, True])
async def test_expiry_closes_1001_and_async_for_ends_quietly(error_first: bool) -> None:
    async with RealtimeSimulator(session_limit=0.5, expiry_error_first=error_first) as sim:
        async with connect(sim.url) as ws:
            received = [json.loads(message) async for message in ws]
        assert ws.close_code == 1001
        assert ws.close_reason == "Your session hit the maximum duration of 0.5 seconds."
        codes = [e["error"]["code"] for e in received if e["type"] == "error"]
        assert codes == (["session_expired"] if error_first else [])
        await sim.wait_for(lambda: not sim.sessions[0].open)
        assert sim.sessions[0].close_code == 1001


async def test_expire_now_fault_ends_like_the_limit(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    simulator.inject(Fault.EXPIRE_NOW)
    async for _ in client.ws:
        pass
    assert client.ws.close_code == 1001
    assert client.ws.close_reason == "Your session hit the maximum duration of 60 minutes."


def test_expiry_reason_wording() -> None:
    assert expiry_reason(3600) == "Your session hit the maximum duration of 60 minutes."
    assert expiry_reason(60) == "Your session hit the maximum duration of 1 minute."
    assert expiry_reason(5) == "Your session hit the maximum duration of 5 seconds."
    assert expiry_reason(2.5) == "Your session hit the maximum duration of 2.5 seconds."
    assert expiry_reason(90) == "Your session hit the maximum duration of 90 seconds."


async def test_wrong_or_missing_key_is_closed_3000() -> None:
    async with RealtimeSimulator(api_key="sk-" "simulator-right-key") as sim:
        for headers in ({"Authorization": "Bearer sk-wrong"}, {}):
            async with connect(sim.url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 3000
            assert info.value.rcvd.reason == "invalid_request_error.invalid_api_key"
        async with connect(sim.url, additional_headers={"Authorization": "Bearer sk-simulator-right-key"}) as ws:
            assert (await Client(ws).recv())["type"] == "session.created"
        await sim.wait_for(lambda: not sim.open_sessions)
        assert [s.close_code for s in sim.sessions] == [3000, 3000, 1000]
        assert "sk-" "simulator-right-key" not in repr(sim.sessions)


@pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_401, 401), (Fault.HTTP_500, 500)])
async def test_handshake_faults_refuse_with_http_status(simulator: RealtimeSimulator, fault: Fault,
                                                        status: int) -> None:
    simulator.inject(fault)
    with pytest.raises(InvalidStatus) as info:
        await connect(simulator.url, open_timeout=TIMEOUT)
    assert info.value.response.status_code == status
    assert simulator.sessions == [] and simulator.refused_handshakes == 1
    client = await open_client(simulator)  # only the next handshake was refused
    await client.ws.close()


async def test_beta_header_gets_the_error_then_4000(simulator: RealtimeSimulator) -> None:
    async with connect(simulator.url, additional_headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        client = Client(ws)
        error = await client.recv()
        assert error["error"]["code"] == "beta_api_shape_disabled"
        with pytest.raises(ConnectionClosedError) as info:
            await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4000


async def test_drop_leaves_no_close_frame(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator)
    simulator.inject(Fault.DROP)
    with pytest.raises(ConnectionClosedError) as info:
        await client.recv()
    assert info.value.rcvd is None
    await simulator.wait_for(lambda: not simulator.sessions[0].open)
    assert simulator.sessions[0].close_code == 1006


@pytest.mark.parametrize(("fault", "code", "reason", "error_code"), [
    (Fault.CLOSE_1011, 1011, "internal error", None),
    (Fault.CLOSE_4000, 4000, "invalid_request_error.beta_api_shape_disabled", "beta_api_shape_disabled"),
    (Fault.ERROR_QUOTA, 1000, "insufficient_quota", "insufficient_quota"),
])
async def test_closing_faults(simulator: RealtimeSimulator, fault: Fault, code: int, reason: str,
                              error_code: str | None) -> None:
    client = await open_client(simulator)
    simulator.inject(fault)
    received: list[Event] = []
    with pytest.raises(ConnectionClosedOK if code == 1000 else ConnectionClosedError):
        while True:
            received.append(await client.recv())
    assert client.ws.close_code == code and client.ws.close_reason == reason
    assert [e["error"]["code"] for e in received if e["type"] == "error"] == ([error_code] if error_code else [])


@pytest.mark.parametrize("fault", [Fault.MALFORMED_JSON, Fault.UNKNOWN_EVENT])
async def test_odd_server_frames_leave_the_session_open(simulator: RealtimeSimulator, fault: Fault) -> None:
    client = await open_client(simulator)
    simulator.inject(fault, count=2)
    for _ in range(2):
        text = await asyncio.wait_for(client.ws.recv(), TIMEOUT)
        if fault is Fault.MALFORMED_JSON:
            with pytest.raises(ValueError):
                json.loads(text)
        else:
            assert json.loads(text)["type"] == "future.unknown_event"
    await client.send(session_update())
    assert (await client.recv())["type"] == "session.updated"
    assert simulator.sessions[0].open
    await client.ws.close()


async def test_fault_waits_for_the_next_session_when_none_is_open(simulator: RealtimeSimulator) -> None:
    simulator.inject(Fault.CLOSE_1011, count=2)
    for _ in range(2):
        client = await open_client(simulator)
        with pytest.raises(ConnectionClosedError):
            await client.recv()
        assert client.ws.close_code == 1011
    client = await open_client(simulator)
    await client.send(session_update())
    assert (await client.recv())["type"] == "session.updated"
    await client.ws.close()


async def test_half_open_is_caught_by_the_client_keepalive(simulator: RealtimeSimulator) -> None:
    client = await open_client(simulator, ping_interval=0.2, ping_timeout=0.2, close_timeout=0.3)
    simulator.inject(Fault.HALF_OPEN)
    await client.send(session_update())  # never answered
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(client.ws.recv(), 3.0)
    assert info.value.rcvd is None and info.value.sent is not None and info.value.sent.code == 1011
    await simulator.wait_for(lambda: not simulator.sessions[0].open, timeout=3.0)


# -- the port and concurrency ----------------------------------------------------------------------


async def test_close_port_refuses_new_connections_until_open_port(simulator: RealtimeSimulator) -> None:
    port = simulator.port
    first = await open_client(simulator)
    await simulator.close_port()
    with pytest.raises(OSError):
        await connect(simulator.url, open_timeout=TIMEOUT)
    await first.send(session_update())
    assert (await first.recv())["type"] == "session.updated"
    await simulator.open_port()
    assert simulator.port == port
    second = await open_client(simulator)
    assert len(simulator.open_sessions) == 2
    await first.ws.close()
    await second.ws.close()


async def test_max_concurrent_counts_parallel_sessions(simulator: RealtimeSimulator) -> None:
    first, second = await asyncio.gather(open_client(simulator), open_client(simulator))
    assert simulator.max_concurrent == 2
    await first.ws.close()
    await second.ws.close()
    await simulator.wait_for(lambda: not simulator.open_sessions)
    third = await open_client(simulator)
    assert simulator.max_concurrent == 2
    await third.ws.close()


async def test_wait_for_says_what_it_waited_for(simulator: RealtimeSimulator) -> None:
    with pytest.raises(TimeoutError, match="replies_sent == 7"):
        await simulator.wait_for(lambda: simulator.sessions[0].replies_sent == 7, timeout=0.2)


async def test_start_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await RealtimeSimulator(host="0.0.0.0").start()


async def test_stop_closes_everything_and_leaves_no_task_behind() -> None:
    sim = RealtimeSimulator(reply_seconds=5.0)
    await sim.start()
    talking = await open_client(sim)
    await talking.send({"type": "response.create"})
    await talking.until("response.output_audio.delta")
    idle = await open_client(sim)
    silent = await open_client(sim, ping_interval=None)
    await silent.send(session_update())
    await silent.until("rate_limits.updated")
    sim.inject(Fault.HALF_OPEN)  # every open session goes silent...
    talking_after = await open_client(sim)  # ...but not this later one
    await sim.stop()
    await sim.stop()  # idempotent
    async for _ in talking_after.ws:
        pass
    assert talking_after.ws.close_code == 1001 and talking_after.ws.close_reason == "server shutting down"
    assert not sim.open_sessions
    for client in (talking, idle, silent):
        await client.ws.close()
    current = asyncio.current_task()
    await sim.wait_for(lambda: {t for t in asyncio.all_tasks() if t is not current} == set(), timeout=3.0)
    with pytest.raises(OSError):
        await connect(sim.url, open_timeout=TIMEOUT)


# -- the command line ------------------------------------------------------------------------------


async def test_command_line_prints_the_url_and_exits_0_on_sigterm() -> None:
    if sys.platform == "win32":
        pytest.skip("SIGTERM semantics differ on Windows")
    env = dict(os.environ, AVA_SIM_TEST_KEY="sk-" "from-the-environment")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ava_tray.simulator", "--port", "0", "--session-limit", "30",
        "--api-key-env", "AVA_SIM_TEST_KEY", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15.0)).decode()
        url = line.split()[-1]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v1/realtime?model=gpt-realtime")
        async with connect(url, additional_headers={"Authorization": "Bearer sk-" "from-the-environment"}) as ws:
            assert (await Client(ws).recv())["session"]["expires_at"] > time.time() + 20
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10.0) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_key_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with RealtimeSimulator(api_key="sk-" "never-logged-123456") as sim:
        for key in ("sk-" "never-logged-123456", "sk-" "wrong-but-secret-654321"):
            async with connect(sim.url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
                with contextlib.suppress(ConnectionClosedError):
                    await Client(ws).recv()
    # The *client* side of `websockets` logs its request headers at DEBUG; only the server side is ours.
    server_side = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "sk-" "never-logged" not in server_side and "sk-" "wrong-but-secret" not in server_side
    assert "simulated session" in server_side


async def test_record_audio_false_keeps_appends_without_their_audio() -> None:
    async with RealtimeSimulator(record_audio=False) as sim:
        client = await open_client(sim)
        await client.send_audio(silence(0.1))
        await sim.wait_for(lambda: sim.sessions[0].received_audio_ms >= 100)
        stored = sim.sessions[0].client_events
        assert len(stored) == 5 and all(e["audio"].endswith("base64 chars>") for e in stored)
        await client.ws.close()
