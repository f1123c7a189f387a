"""Reminders fire once when due, and once after a restart if they came due while AVA was not running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from waits import wait_until

from ava_tray.clock import ManualClock
from ava_tray.memory import MemoryStore
from ava_tray.tools.fakes import FakeAnnouncer, FakeNotifier
from ava_tray.tools.reminders import ReminderScheduler, _local


class Running:
    def __init__(self, path: Path, clock: ManualClock, *, session_up: bool = True) -> None:
        self.store = MemoryStore(path, clock=clock)
        self.notifier = FakeNotifier()
        self.announcer = FakeAnnouncer(session_up=session_up)
        self.scheduler = ReminderScheduler(self.store, notifier=self.notifier, announcer=self.announcer, clock=clock)
        self.task: asyncio.Task[None] | None = None

    async def start(self, clock: ManualClock) -> None:
        self.task = asyncio.create_task(self.scheduler.run())
        await wait_until(lambda: clock.sleeping >= 1, what="the scheduler to sleep")

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.store.close()


@pytest.fixture
async def clock() -> AsyncIterator[ManualClock]:
    yield ManualClock()


async def test_fires_once_when_due(tmp_path: Path, clock: ManualClock) -> None:
    ava = Running(tmp_path / "m.db", clock)
    await ava.start(clock)
    reminder = ava.scheduler.add("take the pizza out", clock.wall() + 5)
    await wait_until(lambda: clock.sleeping >= 1)
    clock.advance(4.9)
    await wait_until(lambda: clock.sleeping >= 1)
    assert ava.notifier.shown == []
    clock.advance(0.2)
    await wait_until(lambda: ava.notifier.shown, what="the reminder")
    assert ava.notifier.shown == [("AVA reminder", "Reminder due: take the pizza out")]
    assert ava.announcer.said == ["Reminder due: take the pizza out"]
    for _ in range(3):
        clock.advance(60)
        await wait_until(lambda: clock.sleeping >= 1)
    assert len(ava.notifier.shown) == 1
    fired = ava.scheduler.get(reminder.id)
    assert fired is not None and fired.fired_at is not None and ava.scheduler.pending() == []
    await ava.stop()


async def test_a_reminder_due_while_ava_was_not_running_fires_once_at_start(tmp_path: Path,
                                                                            clock: ManualClock) -> None:
    first = Running(tmp_path / "m.db", clock)
    await first.start(clock)
    first.scheduler.add("call the dentist", clock.wall() + 5)
    await first.stop()
    clock.advance(3600)  # AVA was not running

    second = Running(tmp_path / "m.db", clock, session_up=False)
    await second.start(clock)
    assert len(second.notifier.shown) == 1
    assert second.notifier.shown[0][1].startswith("Reminder due: call the dentist (it was due at")
    await second.stop()

    third = Running(tmp_path / "m.db", clock)
    await third.start(clock)
    assert third.notifier.shown == []
    await third.stop()


async def test_cancel_and_list(tmp_path: Path, clock: ManualClock) -> None:
    ava = Running(tmp_path / "m.db", clock)
    later = ava.scheduler.add("later", clock.wall() + 100)
    sooner = ava.scheduler.add("sooner", clock.wall() + 10)
    assert [r.text for r in ava.scheduler.pending()] == ["sooner", "later"]
    assert ava.scheduler.cancel(later.id) == later and ava.scheduler.cancel(later.id) is None
    await ava.start(clock)
    clock.advance(200)
    await wait_until(lambda: ava.notifier.shown)
    late = f"Reminder due: {sooner.text} (it was due at {_local(sooner.due_at)})"
    assert [text for _, text in ava.notifier.shown] == [late]
    await ava.stop()


async def test_a_failing_notifier_does_not_stop_the_scheduler(tmp_path: Path, clock: ManualClock) -> None:
    ava = Running(tmp_path / "m.db", clock)

    class Broken:
        def notify(self, title: str, text: str) -> None:
            raise RuntimeError("no tray")

    ava.scheduler.notifier = Broken()
    await ava.start(clock)
    ava.scheduler.add("one", clock.wall() + 1)
    ava.scheduler.add("two", clock.wall() + 2)
    clock.advance(5)
    await wait_until(lambda: len(ava.announcer.said) == 2)
    await ava.stop()
