"""A tool set that changes mid-session (an MCP server came up late) is declared in the open session."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.supervisor import Connected
from ava_tray.tools.registry import make_tool


async def test_a_tool_added_while_connected_is_declared_without_a_new_session() -> None:
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=FakeVoiceIO,
                           history=ReconnectHistory(None))
        task = asyncio.create_task(engine.run())
        await simulator.wait_for(lambda: isinstance(engine.snapshot.state, Connected), timeout=10)
        session = simulator.sessions[0]

        def weather(city: str) -> dict[str, str]:
            """The weather in a city."""
            return {"city": city, "sky": "clear"}

        engine.toolbox.registry.register(make_tool(weather))
        await simulator.wait_for(lambda: any(
            e.get("type") == "session.update" and any(t.get("name") == "weather"
                                                      for t in e["session"].get("tools", []))
            for e in session.client_events), timeout=5)
        last = [e for e in session.client_events if e.get("type") == "session.update"][-1]
        assert "voice" not in str(last["session"].get("audio", "")), "only the tools change mid-session"
        assert len(simulator.sessions) == 1 and session.open
        engine.stop()
        await asyncio.wait_for(task, 5)
