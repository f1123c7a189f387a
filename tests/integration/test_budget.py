"""The daily budget: at 100 % AVA pauses in its own state, the pause holds across a restart, lifts the next day
(clock injected) and gives way to "Go on anyway"."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from ava_tray.audio.fakes import FakeVoiceIO
from ava_tray.clock import ManualClock
from ava_tray.engine import AvaEngine
from ava_tray.history import ReconnectHistory
from ava_tray.ledger import SpendLedger
from ava_tray.pricing import Usage
from ava_tray.settings import Settings
from ava_tray.simulator import RealtimeSimulator
from ava_tray.status import GO_ON, describe
from ava_tray.supervisor import Connected, Paused

BUDGET = 2.0


class CollectedNotices:
    """The user's notifications, as the tray or the console would show them."""

    def __init__(self) -> None:
        self.titles: list[str] = []

    def notify(self, title: str, text: str) -> None:
        self.titles.append(title)


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def engine_on(simulator: RealtimeSimulator, ledger: SpendLedger, clock: ManualClock) -> AvaEngine:
    settings = replace(Settings(), realtime_url=simulator.url, daily_budget=BUDGET)
    return AvaEngine(settings, None, voice_io_factory=FakeVoiceIO, history=ReconnectHistory(None), clock=clock,
                     ledger=ledger)


async def test_the_budget_pause_holds_across_a_restart_and_lifts_the_next_day(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0, wall_offset=time.time())
    ledger_path = tmp_path / "spend.sqlite3"
    async with RealtimeSimulator(record_audio=False) as simulator:
        engine = engine_on(simulator, SpendLedger(ledger_path, clock=clock), clock)
        task = asyncio.create_task(engine.run())
        await wait_for(lambda: isinstance(engine.snapshot.state, Connected))
        notices = CollectedNotices()
        engine.notifier = notices
        # One reply whose usage costs 20 000 × $64 + 12 500 × $32 per million = $1.68 (84 %), then $3.36.
        simulator.reply_usage = {"input_tokens": 12_500, "output_tokens": 20_000,
                                 "input_token_details": {"audio_tokens": 12_500},
                                 "output_token_details": {"audio_tokens": 20_000}}
        assert simulator.request_reply(0.3)
        await wait_for(lambda: engine.snapshot.spend_today > 1.6)
        assert notices.titles == ["AVA's budget"] and isinstance(engine.snapshot.state, Connected)
        await simulator.wait_for(lambda: simulator.request_reply(0.3), timeout=10)
        await wait_for(lambda: isinstance(engine.snapshot.state, Paused))
        assert notices.titles == ["AVA's budget", "AVA paused"]
        status = describe(engine.snapshot, clock.monotonic())
        assert status.tooltip.startswith("AVA · Paused: today's budget of $2.00 is spent")
        assert status.action == GO_ON and status.icon_name == "paused"
        await wait_for(lambda: simulator.open_sessions == [])
        engine.stop()
        await asyncio.wait_for(task, 5)

        restarted = engine_on(simulator, SpendLedger(ledger_path, clock=clock), clock)  # restarted the same day
        task = asyncio.create_task(restarted.run())
        await wait_for(lambda: isinstance(restarted.snapshot.state, Paused))
        sessions = len(simulator.sessions)
        await wait_for(lambda: clock.sleeping > 0)
        clock.advance(86_400)  # the next day
        await wait_for(lambda: isinstance(restarted.snapshot.state, Connected))
        assert len(simulator.sessions) == sessions + 1 and restarted.snapshot.spend_today == 0.0
        restarted.stop()
        await asyncio.wait_for(task, 5)


async def test_go_on_anyway_opens_a_session_for_the_rest_of_the_day(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0, wall_offset=time.time())
    async with RealtimeSimulator(record_audio=False) as simulator:
        ledger = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
        ledger.record("gpt-realtime-2.1", Usage(audio_out=40_000), 2.56)  # spent before AVA started
        engine = engine_on(simulator, ledger, clock)
        task = asyncio.create_task(engine.run())
        await wait_for(lambda: isinstance(engine.snapshot.state, Paused))
        assert simulator.sessions == [], "paused before the first session: none was opened"
        engine.take_status_action()  # "Go on anyway"
        await wait_for(lambda: isinstance(engine.snapshot.state, Connected))
        engine.ledger.record("gpt-realtime-2.1", Usage(audio_out=1_000), 0.064)
        engine._check_budget()
        assert isinstance(engine.snapshot.state, Connected), "gone on past the budget: no second pause today"
        engine.stop()
        await asyncio.wait_for(task, 5)
