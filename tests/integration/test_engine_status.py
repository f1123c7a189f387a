"""The engine owns the truth and pushes one snapshot: state, mute (one owner, changed on the loop), the echo state,
the history summary; the command line's overrides hold for every front end and across new settings."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from ui_helpers import SilentVoiceIO

from ava_tray.__main__ import build_parser
from ava_tray.bootstrap import build_engine, launch_options
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.simulator.faults import Fault
from ava_tray.status import Snapshot, describe
from ava_tray.supervisor import Connected


class QuietVoiceIO(SilentVoiceIO):
    """No devices (tests/ui_helpers.py), with an echo front end that reports itself as real devices do."""

    class _Front:
        state = "off (headphones)"

    echo = _Front()


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_one_snapshot_carries_state_mute_echo_and_the_history_summary() -> None:
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = AvaEngine(replace(Settings(), realtime_url=simulator.url), None, voice_io_factory=QuietVoiceIO,
                           history=ReconnectHistory(None))
        seen: list[tuple[Snapshot, int]] = []
        engine.subscribe(lambda snapshot: seen.append((snapshot, threading.get_ident())))
        task = asyncio.create_task(engine.run())
        await wait_for(lambda: isinstance(engine.snapshot.state, Connected) and engine.snapshot.echo is not None)
        assert engine.snapshot.echo == "off (headphones)" and engine.snapshot.attempt == 1
        assert describe(engine.snapshot, engine.clock.monotonic()).tooltip.startswith("AVA · Connected")

        # The mute tool runs on a thread of its own: the change is made, and published, on the loop.
        loop_thread = threading.get_ident()
        tool_thread = threading.Thread(target=engine.set_muted, args=(True,))
        tool_thread.start()
        tool_thread.join()
        await wait_for(lambda: engine.snapshot.muted)
        assert engine.session.muted
        muted = [thread for snapshot, thread in seen if snapshot.muted]
        assert muted and set(muted) == {loop_thread}
        assert describe(engine.snapshot, engine.clock.monotonic()).icon_name == "muted"

        engine.restart_now()
        await wait_for(lambda: isinstance(engine.snapshot.state, Connected) and engine.snapshot.attempt == 2)
        assert engine.snapshot.muted, "mute holds across a restart"
        assert engine.snapshot.last_interruption is None and engine.snapshot.reconnects_today == 0, \
            "a restart the user asked for is no interruption"
        engine.supervisor.delays = replace(engine.supervisor.delays, session_expired=0.0)
        simulator.inject(Fault.EXPIRE_NOW)
        await wait_for(lambda: isinstance(engine.snapshot.state, Connected) and engine.snapshot.attempt == 3)
        last = engine.snapshot.last_interruption
        assert last is not None and last.cause == "session_expired" and engine.snapshot.reconnects_today == 1
        engine.stop()
        await asyncio.wait_for(task, 5)


def test_the_command_line_overrides_are_applied_in_one_place_for_both_front_ends() -> None:
    args = build_parser().parse_args(["--demo", "--audio-mode", "headphones", "--no-rollover", "--no-voice-gate"])
    engine = build_engine(Settings(), None, launch_options(args), history=ReconnectHistory(None))
    assert engine.effective_settings.audio_mode == "headphones"
    assert engine.session.options.rollover.enabled is False
    assert engine.session.options.gate.enabled is False
    assert engine.settings == Settings(), "the saved settings stay as saved"


def test_rollover_on_the_command_line_keeps_following_the_settings_margin() -> None:
    engine = AvaEngine(replace(Settings(), rollover=False, rollover_margin=300.0), None,
                       launch=LaunchOptions(rollover_enabled=True), history=ReconnectHistory(None))
    assert engine.session.options.rollover.enabled and engine.session.options.rollover.margin == 300.0
    engine.replace_settings(replace(engine.settings, rollover_margin=120.0), None)  # Settings → Save
    policy = engine.session.options.rollover
    assert policy.enabled and policy.margin == 120.0 and policy.hard_margin == 60.0
