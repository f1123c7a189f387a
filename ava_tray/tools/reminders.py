"""Timers and reminders that fire once when due, across reconnects and restarts.

Reminders live in a table of the memory database. Each is marked fired in the same transaction that
claims it, then announced: shown by the `Notifier` and, when a session is up, said by the `Announcer`.
A reminder that came due while AVA was not running fires once when the scheduler starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from ava_tray.clock import Clock, SystemClock
from ava_tray.memory import MemoryStore
from ava_tray.tools.hooks import Announcer, LogNotifier, NoAnnouncer, Notifier

logger = logging.getLogger(__name__)

MAX_SLEEP = 30.0
"""Re-read the wall clock at least this often (the machine may sleep or its clock may be set)."""
LATE_AFTER = 60.0
MAX_REMINDER_CHARS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reminders (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    due_at REAL NOT NULL,
    created_at REAL NOT NULL,
    fired_at REAL
);
CREATE INDEX IF NOT EXISTS reminders_pending ON reminders(due_at) WHERE fired_at IS NULL;
"""


@dataclass(frozen=True)
class Reminder:
    """A reminder due at `due_at` (Unix seconds); `fired_at` once it was announced."""

    id: int
    text: str
    due_at: float
    created_at: float
    fired_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "due": _local(self.due_at), "fired": self.fired_at is not None}


class ReminderScheduler:
    """Keeps reminders in the memory database and fires each one once when it is due."""

    def __init__(self, store: MemoryStore, *, notifier: Notifier | None = None,
                 announcer: Announcer | None = None, clock: Clock | None = None) -> None:
        self._store = store
        self.notifier: Notifier = notifier or LogNotifier()
        self.announcer: Announcer = announcer or NoAnnouncer()
        self._clock = clock or SystemClock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        store.create_tables(_SCHEMA)

    # -- the table -----------------------------------------------------------------------------

    def add(self, text: str, due_at: float) -> Reminder:
        """Store a reminder; the running scheduler picks it up at once (safe from any thread)."""
        text = " ".join(text.split())
        if not text:
            raise ValueError("A reminder needs a text.")
        if len(text) > MAX_REMINDER_CHARS:
            raise ValueError(f"The reminder text is too long (at most {MAX_REMINDER_CHARS} characters).")
        now = self._clock.wall()
        with self._store.transaction() as db:
            reminder_id = db.execute("INSERT INTO reminders(text, due_at, created_at) VALUES (?, ?, ?)",
                                     (text, due_at, now)).lastrowid
        assert reminder_id is not None
        logger.info("reminder %d set for %s", reminder_id, _local(due_at))
        self._poke()
        return Reminder(reminder_id, text, due_at, now)

    def cancel(self, reminder_id: int) -> Reminder | None:
        """Remove a reminder that has not fired; returns it, or None if there was none pending."""
        with self._store.transaction() as db:
            row = db.execute("SELECT * FROM reminders WHERE id = ? AND fired_at IS NULL", (reminder_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM reminders WHERE id = ?", (reminder_id,))
        self._poke()
        return _reminder(row)

    def pending(self) -> list[Reminder]:
        """Reminders not yet fired, soonest first."""
        rows = self._store.query("SELECT * FROM reminders WHERE fired_at IS NULL ORDER BY due_at, id")
        return [_reminder(row) for row in rows]

    def get(self, reminder_id: int) -> Reminder | None:
        rows = self._store.query("SELECT * FROM reminders WHERE id = ?", (reminder_id,))
        return _reminder(rows[0]) if rows else None

    def _claim_due(self) -> list[Reminder]:
        """Mark every due reminder fired and return them (each is claimed exactly once)."""
        now = self._clock.wall()
        with self._store.transaction() as db:
            rows = db.execute("SELECT * FROM reminders WHERE fired_at IS NULL AND due_at <= ? ORDER BY due_at",
                              (now,)).fetchall()
            db.executemany("UPDATE reminders SET fired_at = ? WHERE id = ?", [(now, row["id"]) for row in rows])
        return [_reminder(row) for row in rows]

    # -- firing --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Fire reminders as they come due until cancelled (past-due ones at once)."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        try:
            while True:
                self._changed.clear()
                for reminder in self._claim_due():
                    self._announce(reminder)
                pending = self.pending()
                wait = MAX_SLEEP if not pending else min(MAX_SLEEP, pending[0].due_at - self._clock.wall())
                await self._sleep_or_change(max(0.0, wait))
        finally:
            self._changed = None
            self._loop = None

    async def _sleep_or_change(self, seconds: float) -> None:
        assert self._changed is not None
        sleeper = asyncio.ensure_future(self._clock.sleep_until(self._clock.monotonic() + seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, changed):
                waiter.cancel()
            await asyncio.gather(sleeper, changed, return_exceptions=True)

    def _poke(self) -> None:
        """Wake the scheduler (from the loop or from a tool's worker thread)."""
        loop, changed = self._loop, self._changed
        if loop is None or changed is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            changed.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(changed.set)

    def _announce(self, reminder: Reminder) -> None:
        late = self._clock.wall() - reminder.due_at
        text = f"Reminder due: {reminder.text}"
        if late > LATE_AFTER:
            text += f" (it was due at {_local(reminder.due_at)})"
        logger.info("reminder %d fired", reminder.id)
        try:
            self.notifier.notify("AVA reminder", text)
        except Exception:
            logger.exception("showing reminder %d failed", reminder.id)
        try:
            spoken = self.announcer.announce(text)
        except Exception:
            logger.exception("announcing reminder %d failed", reminder.id)
            spoken = False
        if not spoken:
            logger.info("reminder %d was shown but not spoken (no session up)", reminder.id)


def _reminder(row: Any) -> Reminder:
    return Reminder(int(row["id"]), str(row["text"]), float(row["due_at"]), float(row["created_at"]),
                    None if row["fired_at"] is None else float(row["fired_at"]))


def _local(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
