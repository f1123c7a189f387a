"""One conversation (`RealtimeSession.run`) against the project's simulator on device-free audio.

What the session tells its supervisor is recorded from the `SessionContext` it is given; the audio is a
`FakeVoiceIO` (real-time 20 ms blocks, no PulseAudio); the server is a `RealtimeSimulator` on loopback.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from waits import wait_until

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.realtime.events import SessionConfig
from ava_tray.session import GateOptions, RealtimeSession, RolloverPolicy, SessionOptions, ToolHost
from ava_tray.simulator import RealtimeSimulator, SimulatedSession
from ava_tray.supervisor import SessionContext


@dataclass
class ToldSupervisor:
    """What the session told its supervisor, in order."""

    ready: list[float | None] = field(default_factory=list)
    speaking: list[bool] = field(default_factory=list)
    rolled_over: list[float | None] = field(default_factory=list)
    heard: list[tuple[str, str]] = field(default_factory=list)

    def context(self) -> SessionContext:
        return SessionContext(1, self.ready.append, self.speaking.append,
                              lambda role, text: self.heard.append((role, text)), self.rolled_over.append)


@dataclass
class Conversation:
    simulator: RealtimeSimulator
    session: RealtimeSession
    voice: FakeVoiceIO
    told: ToldSupervisor
    task: asyncio.Task[Any]


@asynccontextmanager
async def conversation(simulator: RealtimeSimulator, *, rollover: RolloverPolicy | None = None,
                       tools: ToolHost | None = None, gate: GateOptions | None = None,
                       speed: float = 1.0) -> AsyncIterator[Conversation]:
    """A conversation that is configured and has its audio open; cancelled (as a stop does) at the end.
    The voice gate is on, as by default, unless `gate` says otherwise; `speed` runs the devices' clock faster
    (`FakeVoiceIO`)."""
    voice = FakeVoiceIO(speed=speed)
    options = SessionOptions(url=simulator.url, api_key=None, config=SessionConfig(),
                             rollover=rollover or RolloverPolicy(), gate=gate or GateOptions())
    session = RealtimeSession(options, lambda: voice, tools=tools)
    told = ToldSupervisor()
    task = asyncio.create_task(session.run(told.context()))
    try:
        await wait_until(lambda: told.ready or task.done(), timeout=10, what="the conversation to be ready")
        assert not task.done(), task.result()
        yield Conversation(simulator, session, voice, told, task)
    finally:
        task.cancel()
        await asyncio.wait({task})
    assert voice.closed, "the audio is closed on every exit"


def appended_audio(session: SimulatedSession) -> bytes:
    """The microphone audio a server session received, in order (the simulator must record audio)."""
    return b"".join(base64.b64decode(event["audio"]) for event in session.client_events
                    if event["type"] == "input_audio_buffer.append")


def client_event_kinds(session: SimulatedSession) -> list[str]:
    """What the client sent, microphone audio left out; items as `item:<type>`."""
    return [f"item:{event['item'].get('type')}" if event["type"] == "conversation.item.create" else event["type"]
            for event in session.client_events if event["type"] != "input_audio_buffer.append"]
