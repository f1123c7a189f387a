"""The engine feeds the conversation log from a real session on the simulator (device-free audio): the turns in
order with the simulator's transcripts, a tool call with its result, a barge-in cut, a renewal and a reconnection."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from waits import wait_state, wait_until

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.conversation_log import Marker, ToolCall, Turn
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import Fault, RealtimeSimulator, synthetic_voice
from ava_tray.supervisor import Connected

SILENCE = bytes(24_000)  # half a second
SESSION_LIMIT = 10.0
"""Long enough for the exchanges, the tool call and the barge-in before the renewal at the hard margin (1 s before
the limit: after the barge-in the session is not at a turn boundary again)."""
RECONNECT_DELAY = 2.0
"""The wait before reconnecting after a lost connection (5 s by default), which the reconnection marker reports."""


def turns(engine: AvaEngine) -> list[tuple[str, str]]:
    return [(e.role, e.text) for e in engine.conversation_log.entries if isinstance(e, Turn)]


async def test_the_log_follows_a_real_conversation() -> None:
    voice = FakeVoiceIO()
    async with RealtimeSimulator(session_limit=SESSION_LIMIT) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=lambda: voice,
                           history=ReconnectHistory(None),
                           launch=LaunchOptions(rollover=RolloverPolicy(margin=3.0, hard_margin=1.0)))
        engine.supervisor.delays = replace(engine.supervisor.delays, connection_lost=RECONNECT_DELAY)
        task = asyncio.create_task(engine.run())
        try:
            await wait_state(engine, lambda s: isinstance(s, Connected))
            voice.say(synthetic_voice(1.0) + SILENCE)
            await wait_until(lambda: len(turns(engine)) >= 2, timeout=10, what="a user turn and AVA's answer")
            voice.say(synthetic_voice(0.6) + SILENCE)
            await wait_until(lambda: len(turns(engine)) >= 4, timeout=10, what="a second exchange")
            assert turns(engine) == [("user", "(1.0 s of speech)"),
                                     ("assistant", "You said something for 1.0 seconds."),
                                     ("user", "(0.6 s of speech)"),
                                     ("assistant", "You said something for 0.6 seconds.")]

            simulator.request_function_call("get_time", {})
            await wait_until(lambda: any(isinstance(e, ToolCall) and e.output for e in engine.conversation_log.entries),
                             timeout=10, what="the tool's result in the log")
            (call,) = [e for e in engine.conversation_log.entries if isinstance(e, ToolCall)]
            assert call.name == "get_time" and '"time"' in (call.output or "")

            await wait_until(lambda: not voice.is_playing, timeout=10, what="AVA to finish speaking")
            assert simulator.request_reply(4.0)
            await wait_until(lambda: any(voice.played_ms(i) >= 400 for i in voice.played), timeout=10,
                             what="AVA to be speaking")
            voice.say(synthetic_voice(0.8) + SILENCE)
            log = engine.conversation_log
            await wait_until(lambda: any(isinstance(e, Turn) and e.cut_after_ms for e in log.entries),
                             timeout=10, what="AVA's turn to be marked as cut")

            await wait_until(lambda: any(isinstance(e, Marker) and e.kind == "renewed"
                                         for e in engine.conversation_log.entries), timeout=20,
                             what="a renewal marker")
            simulator.inject(Fault.DROP)
            await wait_until(lambda: any(isinstance(e, Marker) and e.kind == "reconnected"
                                         for e in engine.conversation_log.entries), timeout=20,
                             what="a reconnection marker")
            marker = engine.conversation_log.entries[-1]
            assert isinstance(marker, Marker) and marker.seconds is not None \
                and RECONNECT_DELAY - 1.0 <= marker.seconds < RECONNECT_DELAY + 10.0
        finally:
            engine.stop()
            await asyncio.wait_for(task, 10)
