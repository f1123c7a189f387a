"""The server unreachable for 30 s: attempts back off, the console and tray say why, and once the port
opens the session is ready within 1 s plus one handshake (the reachability probe, not the countdown)."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from dataclasses import replace
from typing import Any

import pulse
import pytest

from ava_tray.console import SessionLog
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import Fault, RealtimeSimulator
from ava_tray.status import Snapshot, describe
from ava_tray.supervisor import Connected, Reconnecting, SupervisorState

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]

OUTAGE_S = 30.0


async def test_a_30_s_outage_backs_off_says_why_and_reconnects_right_after(voice_io_factory: Any) -> None:
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=voice_io_factory,
                           history=ReconnectHistory(None), launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
        out = io.StringIO()
        log = SessionLog(out)
        tooltips: list[str] = []
        states: list[SupervisorState] = []

        def seen(state: SupervisorState) -> None:
            states.append(state)
            log.on_state(state)
            tooltips.append(describe(Snapshot(state), time.monotonic()).tooltip)

        engine.supervisor.subscribe(seen)
        task = asyncio.create_task(engine.run())
        await pulse.wait_until(lambda: isinstance(engine.supervisor.state, Connected), timeout=15, what="connected")
        await simulator.close_port()
        simulator.inject(Fault.DROP)
        first = engine.supervisor.attempt
        await pulse.wait_until(lambda: isinstance(engine.supervisor.state, Reconnecting), timeout=10, what="drop")
        outage_started = time.monotonic()
        await pulse.wait_until(lambda: time.monotonic() - outage_started >= OUTAGE_S, timeout=OUTAGE_S + 5,
                               what="the outage to last", poll=0.5)
        attempts = engine.supervisor.attempt - first
        delays = [s.delay for s in states if isinstance(s, Reconnecting)]
        await simulator.open_port()
        opened = time.monotonic()
        await pulse.wait_until(lambda: isinstance(engine.supervisor.state, Connected), timeout=10,
                               what="the session after the port opened")
        ready_after = time.monotonic() - opened
        engine.stop()
        await asyncio.wait_for(task, 5)

    print(f"\nattempts during {OUTAGE_S:.0f} s: {attempts}; delays {[round(d, 1) for d in delays]}; "
          f"ready {ready_after:.3f} s after the port opened")
    assert 1 <= attempts <= 5, "a handful of attempts at most"
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays[1:])), delays
    assert ready_after <= 1.0 + 0.5, "ready within 1 s plus one handshake"
    text = out.getvalue()
    assert "⚠️ Connection lost: the server refused the connection" in text
    assert any("Reconnecting in" in t and "connection lost" in t.lower() for t in tooltips), tooltips[-5:]
