"""The engine keeps one session runner: new settings never strand the running conversation."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pulse
import pytest
from waits import wait_state

from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.supervisor import Connected

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]


async def test_mute_and_spoken_announcements_work_after_new_settings(voice_io_factory: Any) -> None:
    async with RealtimeSimulator(record_audio=False) as simulator:
        # The gate off: the microphone streams, so mute shows as the audio stopping (gated: tests/e2e/test_voice_gate*).
        settings = replace(Settings(), realtime_url=simulator.url, voice_gate=False)
        engine = AvaEngine(settings, None, voice_io_factory=voice_io_factory, history=ReconnectHistory(None),
                           launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
        task = asyncio.create_task(engine.run())
        await wait_state(engine, lambda s: isinstance(s, Connected))
        session = simulator.sessions[0]
        await simulator.wait_for(lambda: session.received_audio_ms > 200, timeout=10)

        engine.replace_settings(replace(settings, voice="cedar"), None)  # Settings → Save while connected
        engine.muted = True
        heard = session.received_audio_ms
        # Muted: over the next 2 s at most the blocks already in flight arrive (unmuted, 2000 ms would).
        with pytest.raises(TimeoutError):
            await simulator.wait_for(lambda: session.received_audio_ms > heard + 300, timeout=2.0)
        heard = session.received_audio_ms

        engine.muted = False
        await simulator.wait_for(lambda: session.received_audio_ms > heard + 100, timeout=5)
        assert engine.announce("A reminder came due: stretch.")
        await simulator.wait_for(lambda: any("stretch" in str(e) for e in session.client_events), timeout=5)
        assert len(simulator.sessions) == 1, "the running session was kept"
        engine.stop()
        await asyncio.wait_for(task, 5)
