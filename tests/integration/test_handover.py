"""Make before break, on the simulator with device-free audio: the microphone moves to the new server
session in one step with nothing lost, the conversation goes along, and a tool call still running at the
handover is answered in the new session with the call re-created first."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import room_audio as ra
from conversation_rig import appended_audio, client_event_kinds, conversation
from waits import wait_until

from ava_tray import session as session_module
from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.realtime.events import ToolSpec
from ava_tray.session import GateOptions, RolloverPolicy
from ava_tray.simulator import RealtimeSimulator, synthetic_voice

HELD_BLOCKS = 5


def slow_network_for_the_next_session(monkeypatch: pytest.MonkeyPatch, voice: FakeVoiceIO) -> None:
    """The new session's socket opens only after the microphone captured `HELD_BLOCKS` more blocks: they
    must be held during the handover and reach the new session (on loopback it would open too soon)."""
    open_connection = session_module.open_connection

    async def slowly(*args: Any, **kwargs: Any) -> Any:
        captured = len(voice.captured)
        await wait_until(lambda: len(voice.captured) >= captured + HELD_BLOCKS, timeout=2,
                         what="blocks captured during the handover")
        return await open_connection(*args, **kwargs)

    monkeypatch.setattr(session_module, "open_connection", slowly)


async def test_a_rollover_moves_the_microphone_in_one_step_and_carries_the_conversation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 4.0
    # The gate off: every block streams, so each can be followed across the handover.
    async with RealtimeSimulator(session_limit=limit) as simulator, \
            conversation(simulator, gate=GateOptions(enabled=False)) as talk:
        slow_network_for_the_next_session(monkeypatch, talk.voice)
        first = simulator.sessions[0]
        assert talk.told.ready == [first.expires_at]
        talk.voice.say(synthetic_voice(0.6))
        await simulator.wait_for(lambda: first.replies_sent == 1, timeout=limit)

        await simulator.wait_for(lambda: len(simulator.sessions) == 2 and not first.open, timeout=limit + 1)
        second = simulator.sessions[1]
        await simulator.wait_for(lambda: second.received_audio_ms >= 200, timeout=2)

        assert first.close_code == 1000 and first.close_reason == "rolled over to a fresh session"
        assert first.closed_at is not None and first.closed_at - first.opened_at < limit - 0.2, "before the limit"
        assert simulator.max_concurrent == 2 and talk.session.handovers == 1
        assert talk.told.rolled_over == [second.expires_at] and talk.told.ready == [first.expires_at]

        # The new session got its settings, then the conversation so far, before any audio.
        assert client_event_kinds(second)[:2] == ["session.update", "item:message"]
        assert second.client_events[0]["type"] == "session.update"
        replay = second.client_events[1]["item"]["content"][0]["text"]
        assert "User: (0.6 s of speech)" in replay and "AVA: You said something for 0.6 seconds." in replay

        # Not one microphone block lost, repeated or reordered across the handover: those captured while the
        # new session was being opened were held, then sent to it first.
        heard_by_first, heard_by_second = appended_audio(first), appended_audio(second)
        captured = b"".join(talk.voice.captured)
        assert heard_by_first and len(heard_by_second) >= HELD_BLOCKS * len(talk.voice.captured[0])
        assert captured.startswith(heard_by_first + heard_by_second)
        assert not first.errors_sent and not second.errors_sent


class SlowLookup:
    """A tool host with one tool that answers only when the test lets it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def specs(self) -> tuple[ToolSpec, ...]:
        return (ToolSpec("slow_lookup", "Looks something up, slowly."),)

    def instructions_suffix(self) -> str:
        return ""

    version = 0
    """The tool set never changes."""

    async def call(self, name: str, arguments: str, call_id: str) -> str:
        self.started.set()
        await self.release.wait()
        return json.dumps({"answer": "found it"})


async def test_a_tool_running_at_the_hard_margin_answers_in_the_new_session_with_its_call_recreated() -> None:
    limit = 7.0  # the shortest whose window keeps its hard margin 0.7 s past the soft one (the server's expires_at
    # is whole seconds, so the session may be up to a second shorter)
    tools = SlowLookup()
    async with RealtimeSimulator(session_limit=limit) as simulator, conversation(simulator, tools=tools) as talk:
        first = simulator.sessions[0]
        simulator.request_function_call("slow_lookup", {"what": "keys"})
        await asyncio.wait_for(tools.started.wait(), 5)
        call_id = first.function_calls[-1]["call_id"]

        await simulator.wait_for(lambda: len(simulator.sessions) == 2 and not first.open, timeout=limit)
        second = simulator.sessions[1]
        handed_over = time.time() - (time.monotonic() - second.opened_at)
        created_at = time.time() - (time.monotonic() - first.opened_at)
        soft, hard = RolloverPolicy().window(created_at, first.expires_at)
        assert soft + 0.5 < hard - 0.2 <= handed_over < first.expires_at, (
            f"handed over {handed_over - soft:+.2f} s after the soft margin, {handed_over - hard:+.2f} s after the "
            "hard one: while the tool runs it must wait for the hard one")
        assert not tools.release.is_set() and first.close_code == 1000 and talk.session.handovers == 1

        tools.release.set()
        await simulator.wait_for(lambda: len(second.function_outputs) == 1 and second.replies_sent == 1, timeout=5)
        assert not first.function_outputs and not second.errors_sent
        assert client_event_kinds(second)[-3:] == ["item:function_call", "item:function_call_output",
                                                   "response.create"]
        recreated, output = (e["item"] for e in second.client_events if e["type"] == "conversation.item.create"
                             and e["item"]["type"] != "message")
        assert recreated == {"type": "function_call", "call_id": call_id, "name": "slow_lookup",
                             "arguments": json.dumps({"what": "keys"})}
        assert output["call_id"] == call_id and json.loads(output["output"]) == {"answer": "found it"}
        assert any(entry.role == "tool" and entry.text.startswith('slow_lookup({"what": "keys"}) -> ')
                   for entry in talk.session.transcript.entries)


async def test_someone_speaking_at_the_hard_margin_reaches_the_new_session_with_the_gate_still_open() -> None:
    """The gate belongs to the conversation, not to a server session: a request spoken across a handover at the
    hard margin arrives whole, split between the two sessions in order, in one opening (no second pre-roll)."""
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)
    limit = 5.0  # the request starts a second before the soft margin and is under way at the hard one
    voice = ra.speak("Could you read me the last thing I copied? And then the one before that, please.", "en-gb", 140)
    async with RealtimeSimulator(session_limit=limit) as simulator, conversation(simulator) as talk:
        first = simulator.sessions[0]
        simulator.session_limit = 3600.0  # the session taking over lasts past the request: one handover
        created_at = time.time() - (time.monotonic() - first.opened_at)
        soft, _hard = RolloverPolicy().window(created_at, first.expires_at)
        request = ra.scene([voice], [0.0, 1.5], None, speech_rms_dbfs=-26)
        openings: list[bool] = []
        talk.session.on_uplink = lambda sending, _sent: openings.append(sending) if sending else None
        await wait_until(lambda: time.time() >= soft - 1.0, timeout=limit, what="a second before the soft margin")
        talk.voice.say(request.pcm)
        await simulator.wait_for(lambda: len(simulator.sessions) == 2 and not first.open, timeout=limit)
        second = simulator.sessions[1]
        await wait_until(lambda: not talk.voice.saying and not talk.session.sending, timeout=15,
                         what="the request said and the gate closed")
        assert talk.session.handovers == 1
        assert openings == [True], "the gate closed and opened again at the handover"
    sent = appended_audio(first) + appended_audio(second)
    speech = request.pcm[request.utterances[0][0] * ra.FRAME * 2 : request.utterances[0][1] * ra.FRAME * 2]
    assert speech in sent, "the request did not reach the server whole across the handover"
    assert appended_audio(second), "the handover happened before the request: nothing to check"
    assert b"".join(talk.voice.captured).find(sent) >= 0, "audio lost or repeated at the handover"
