"""A synthetic week of reconnect history with every kind of day, at local times (for the day strip's tests)."""

from __future__ import annotations

import datetime as dt

from ava_tray.history import ReconnectRecord

TODAY = dt.date(2026, 12, 14)
NOW = dt.datetime.combine(TODAY, dt.time(18, 0)).timestamp()


def at(days_ago: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Wall time `days_ago` days before TODAY at the local time given."""
    day = TODAY - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, minute, second)).timestamp()


def record(when: float, cause: str, session_s: float, *, unavailable_s: float | None = None,
           since: float | None = None, offline: tuple[tuple[float, float], ...] = (), delay: float | None = 3.0,
           ) -> ReconnectRecord:
    return ReconnectRecord(at=when, cause=cause, message=cause, attempt=1, delay_s=delay, session_s=session_s,
                           unavailable_s=unavailable_s, unavailable_since=since, offline=offline)


def week() -> list[ReconnectRecord]:
    """Six days ago: two sessions with a 3 s expiry between them. Five: a rejected key for half an hour before
    the first connection. Four: the network down for 20 minutes. Three: the budget spent at 15:00 (paused till
    midnight). Two: hourly rollovers. Yesterday: AVA not running. Today: a 30 s drop at 10:00, connected since."""
    return [
        record(at(6, 12), "session_expired", 4 * 3600, unavailable_s=3.0, since=at(6, 12)),
        record(at(6, 17), "stopped", 5 * 3600 - 3, delay=0.0),
        record(at(5, 9, 0, 5), "fatal", 0.0, unavailable_s=1800.0, since=at(5, 9), delay=None),
        record(at(5, 18), "stopped", 8.5 * 3600, delay=0.0),
        record(at(4, 14), "connection_lost", 4 * 3600, unavailable_s=20 * 60 + 2, since=at(4, 14),
               offline=((at(4, 14, 0, 5), at(4, 14, 20)),)),
        record(at(4, 20), "stopped", 20 * 3600 - (14 * 3600 + 20 * 60 + 2), delay=0.0),
        record(at(3, 15), "paused", 6 * 3600, delay=None),
        *(record(at(2, hour), "rollover", 3600.0, unavailable_s=0.0, delay=0.0) for hour in (10, 11, 12)),
        record(at(2, 12, 30), "stopped", 1800.0, delay=0.0),
        record(at(0, 10), "connection_lost", 2 * 3600, unavailable_s=30.0, since=at(0, 10), delay=5.0),
    ]
