"""The spend ledger: every response's usage and cost, by day and model, in SQLite in the data folder.

Each response is one row committed at once (WAL journal), so a crash loses nothing already answered. The
ledger holds token counts, the model, the session's id and the cost: never the key, never the
conversation. It also keeps the days on which the user chose to go on past the daily budget, and how much
microphone audio left the machine each day (the voice gate's work, shown in the history window).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ava_tray.clock import Clock, SystemClock
from ava_tray.pricing import Usage

logger = logging.getLogger(__name__)

_KINDS = [f.name for f in fields(Usage)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    session TEXT NOT NULL DEFAULT '',
    {", ".join(f"{kind} REAL NOT NULL DEFAULT 0" for kind in _KINDS)},
    cost_usd REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_day ON responses (day);
CREATE TABLE IF NOT EXISTS budget_overrides (day TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS uplink (day TEXT PRIMARY KEY, bytes INTEGER NOT NULL DEFAULT 0,
                                   openings INTEGER NOT NULL DEFAULT 0);
"""


class LedgerUnavailable(Exception):
    """The ledger file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class DayTotal:
    """One day's usage of one model."""

    day: str
    model: str
    usage: Usage
    cost_usd: float


@dataclass(frozen=True)
class Uplink:
    """Microphone audio sent to the server in a day."""

    bytes: int
    """PCM16 at 24 kHz, before base64."""
    openings: int
    """Times the microphone began sending (the voice gate opening; once per connection without a gate)."""


def local_day(wall: float) -> str:
    """The local calendar day of a wall time, as YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(wall).strftime("%Y-%m-%d")


class SpendLedger:
    """Records usage and answers "what did today, this month, this session cost?"."""

    def __init__(self, path: Path | None, *, clock: Clock | None = None) -> None:
        self.path = path
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        target = str(path) if path is not None else ":memory:"
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=5.0)
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailable(f"The spend ledger {target} cannot be used: {exc}.") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._db.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def record(self, model: str, usage: Usage, cost_usd: float, *, session: str = "") -> None:
        """Add one response's (or transcription's) usage; committed before this returns."""
        now = self.clock.wall()
        columns = ", ".join(["at", "day", "model", "session", *_KINDS, "cost_usd"])
        values = [now, local_day(now), model, session, *(getattr(usage, k) for k in _KINDS), cost_usd]
        with self._cursor() as cursor:
            cursor.execute(f"INSERT INTO responses ({columns}) VALUES ({', '.join('?' * len(values))})", values)

    def cost_on(self, day: str) -> float:
        """The cost of one day (YYYY-MM-DD) in USD."""
        with self._cursor() as cursor:
            row = cursor.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM responses WHERE day = ?", (day,)).fetchone()
        return float(row[0])

    def cost_today(self) -> float:
        return self.cost_on(local_day(self.clock.wall()))

    def cost_this_month(self) -> float:
        month = local_day(self.clock.wall())[:7]
        with self._cursor() as cursor:
            row = cursor.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM responses WHERE substr(day, 1, 7) = ?",
                                 (month,)).fetchone()
        return float(row[0])

    def cost_of_session(self, session: str) -> float:
        with self._cursor() as cursor:
            row = cursor.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM responses WHERE session = ?",
                                 (session,)).fetchone()
        return float(row[0])

    def cost_between(self, start: float, end: float) -> float:
        """The cost of the responses recorded from wall time `start` to `end` (one session's, for the history)."""
        with self._cursor() as cursor:
            row = cursor.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM responses WHERE at >= ? AND at <= ?",
                                 (start, end)).fetchone()
        return float(row[0])

    def totals_by_day(self) -> list[DayTotal]:
        """Every day and model with its tokens by kind and its cost, oldest first."""
        sums = ", ".join(f"SUM({kind})" for kind in _KINDS)
        with self._cursor() as cursor:
            rows = cursor.execute(f"SELECT day, model, {sums}, SUM(cost_usd) FROM responses "
                                  "GROUP BY day, model ORDER BY day, model").fetchall()
        totals = []
        for row in rows:
            amounts: dict[str, Any] = {kind: (float(value) if kind == "transcription_seconds" else int(value))
                                       for kind, value in zip(_KINDS, row[2:-1], strict=True)}
            usage = Usage(**amounts)
            totals.append(DayTotal(day=row[0], model=row[1], usage=usage, cost_usd=float(row[-1])))
        return totals

    def add_uplink(self, sent_bytes: int, *, openings: int = 0) -> None:
        """Count microphone audio sent to the server today (bytes of PCM16) and times the microphone opened."""
        with self._cursor() as cursor:
            cursor.execute("INSERT INTO uplink (day, bytes, openings) VALUES (?, ?, ?) ON CONFLICT (day) DO UPDATE "
                           "SET bytes = bytes + excluded.bytes, openings = openings + excluded.openings",
                           (local_day(self.clock.wall()), sent_bytes, openings))

    def uplink_on(self, day: str) -> Uplink:
        """Microphone audio sent on one day (YYYY-MM-DD)."""
        with self._cursor() as cursor:
            row = cursor.execute("SELECT bytes, openings FROM uplink WHERE day = ?", (day,)).fetchone()
        return Uplink(int(row[0]), int(row[1])) if row else Uplink(0, 0)

    def uplink_today(self) -> Uplink:
        return self.uplink_on(local_day(self.clock.wall()))

    def go_on_today(self) -> None:
        """The user chose to go on past today's budget."""
        with self._cursor() as cursor:
            cursor.execute("INSERT OR IGNORE INTO budget_overrides (day) VALUES (?)", (local_day(self.clock.wall()),))

    def gone_on_today(self) -> bool:
        with self._cursor() as cursor:
            row = cursor.execute("SELECT 1 FROM budget_overrides WHERE day = ?",
                                 (local_day(self.clock.wall()),)).fetchone()
        return row is not None


WARN_AT = 0.8
"""A notification when this share of the daily budget is spent."""


@dataclass(frozen=True)
class BudgetStatus:
    """Today's spend against the daily budget (a limit of 0 means no budget)."""

    limit_usd: float
    spent_usd: float
    gone_on: bool = False
    """The user chose to go on past the budget today."""

    @property
    def warn(self) -> bool:
        return self.limit_usd > 0 and self.spent_usd >= WARN_AT * self.limit_usd

    @property
    def spent_all(self) -> bool:
        return self.limit_usd > 0 and self.spent_usd >= self.limit_usd

    @property
    def paused(self) -> bool:
        """AVA opens no session and keeps the microphone muted until tomorrow (or until the user goes on)."""
        return self.spent_all and not self.gone_on



def budget_of(ledger: SpendLedger, limit_usd: float) -> BudgetStatus:
    """Today's budget status from the ledger."""
    return BudgetStatus(limit_usd=limit_usd, spent_usd=ledger.cost_today(), gone_on=ledger.gone_on_today())
