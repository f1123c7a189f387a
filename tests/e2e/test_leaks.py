"""50 sessions in a row ended by expiry leave nothing behind: threads, audio streams, fds, tasks."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from dataclasses import replace
from pathlib import Path

import pulse
import pytest

from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.session import RolloverPolicy
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.supervisor import Connected, Reconnecting

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]

SESSIONS = 50


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pulse_streams() -> int:
    import subprocess

    count = 0
    for kind in ("sink-inputs", "source-outputs"):
        listing = subprocess.run(["pactl", "list", "short", kind], capture_output=True, text=True, timeout=10)
        count += len([line for line in listing.stdout.splitlines() if line.strip()])
    return count


def snapshot() -> dict[str, int]:
    gc.collect()  # objects of earlier tests that still hold a descriptor
    return {
        "threads": threading.active_count(),
        "fds": open_fds(),
        "tasks": len(asyncio.all_tasks()),
        "pulse_streams": pulse_streams(),
    }


async def test_fifty_expiries_return_to_baseline(tmp_path: Path) -> None:
    from ava_tray.audio.devices import SoundDeviceVoiceIO

    opened: list[SoundDeviceVoiceIO] = []

    def make_voice() -> SoundDeviceVoiceIO:
        voice = SoundDeviceVoiceIO()
        opened.append(voice)
        return voice

    async with RealtimeSimulator(session_limit=0.6, record_audio=False) as simulator:
        settings = replace(Settings(), realtime_url=simulator.url, delay_session_expired=0.05)
        engine = AvaEngine(settings, None, voice_io_factory=make_voice,
                           history=ReconnectHistory(tmp_path / "history.jsonl"),
                           launch=LaunchOptions(rollover=RolloverPolicy(enabled=False)))
        task = asyncio.create_task(engine.run())
        changed = asyncio.Event()
        engine.supervisor.subscribe(lambda _: changed.set())

        async def reach(attempt: int, kind: type, patience: float) -> None:
            async with asyncio.timeout(patience):
                while not (isinstance(engine.supervisor.state, kind) and engine.supervisor.attempt == attempt):
                    changed.clear()
                    await changed.wait()

        await reach(1, Reconnecting, 15)  # the first session has opened and closed everything once
        baseline = snapshot()
        await reach(SESSIONS, Reconnecting, 120)
        after = snapshot()
        engine.stop()
        await asyncio.wait_for(task, 5)

    assert len(simulator.sessions) >= SESSIONS
    assert sum(1 for r in engine.history.records if r.cause == "session_expired") >= SESSIONS
    assert all(not voice.is_open for voice in opened), "every audio stream was closed"
    print(f"\nbaseline {baseline}\nafter {SESSIONS} sessions {after}")
    # Nothing grew: a leak of one thread, descriptor, task or stream per session would show 49 more.
    assert all(after[name] <= baseline[name] for name in baseline), (baseline, after)
    assert after["pulse_streams"] == baseline["pulse_streams"]
    assert isinstance(engine.supervisor.state, type(engine.supervisor.state))
    assert not isinstance(engine.supervisor.state, Connected)
