"""The day strip's data: a synthetic week turned into stretches of state per day, whose unavailable time is
exactly what `history.availability` counts."""

from __future__ import annotations

import datetime as dt

import pytest
from week_of_history import NOW, TODAY, at, week

from ava_tray.day_timeline import Live, Stretch, last_days, timeline
from ava_tray.history import DAY, ReconnectHistory, ReconnectRecord, availability


def kinds(stretches: tuple[Stretch, ...]) -> list[tuple[str, str, str]]:
    def hm(wall: float) -> str:
        return dt.datetime.fromtimestamp(wall).strftime("%H:%M:%S")

    return [(s.kind, hm(s.begin), hm(s.end)) for s in stretches]


def test_a_synthetic_week_day_by_day() -> None:
    days = last_days(week(), NOW, live=Live(connected_since=at(0, 10, 0, 30)))
    assert [d.date for d in days] == [TODAY - dt.timedelta(days=n) for n in range(6, -1, -1)]
    assert kinds(days[0].stretches) == [("connected", "08:00:00", "12:00:00"), ("reconnecting", "12:00:00", "12:00:03"),
                                        ("connected", "12:00:03", "17:00:00")]
    assert kinds(days[1].stretches) == [("reconnecting", "09:00:00", "09:00:05"), ("error", "09:00:05", "09:30:00"),
                                        ("connected", "09:30:00", "18:00:00")]
    assert kinds(days[2].stretches) == [("connected", "10:00:00", "14:00:00"), ("reconnecting", "14:00:00", "14:00:05"),
                                        ("offline", "14:00:05", "14:20:00"), ("reconnecting", "14:20:00", "14:20:02"),
                                        ("connected", "14:20:02", "20:00:00")]
    assert kinds(days[3].stretches)[-1] == ("paused", "15:00:00", "00:00:00")  # the budget: until midnight
    assert kinds(days[4].stretches) == [("connected", "09:00:00", "12:30:00")]  # rollovers: no gap
    assert days[5].stretches == ()  # not running
    assert kinds(days[6].stretches) == [("connected", "08:00:00", "10:00:00"), ("reconnecting", "10:00:00", "10:00:30"),
                                        ("connected", "10:00:30", "18:00:00")]
    assert days[2].at(at(4, 14, 10)) is not None and days[2].at(at(4, 14, 10)).describe() == \
        "14:00–14:20 · Waiting for the network · 19 min"


def test_each_days_availability_is_the_historys_and_the_strips() -> None:
    records = week()
    for day in last_days(records, NOW):
        until = min(day.end, NOW)
        window = until - day.begin
        assert day.availability == pytest.approx(availability(records, until, window))
        assert day.availability == pytest.approx(1 - day.unavailable_s / window)
    today = last_days(records, NOW)[-1]
    assert today.unavailable_s == pytest.approx(30.0)
    assert last_days(records, NOW)[1].unavailable_s == pytest.approx(1800.0)  # never connected: unavailable


def test_an_ongoing_outage_and_waiting_for_the_network_last_until_now() -> None:
    lost = ReconnectRecord(at=NOW - 600, cause="connection_lost", message="lost", attempt=1, session_s=60.0,
                           unavailable_since=NOW - 600, id="down")
    stretches = timeline([lost], NOW, ongoing="down", offline_since=NOW - 300)
    assert [(s.kind, s.end - s.begin) for s in stretches] == [("connected", 60.0), ("reconnecting", 300.0),
                                                              ("offline", 300.0)]
    assert availability([lost], NOW, DAY, ongoing="down") == pytest.approx(1 - 600 / DAY)


def test_waiting_for_the_network_is_kept_with_its_record_and_read_back(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "history.jsonl"
    history = ReconnectHistory(path)
    history.append(ReconnectRecord(at=100.0, cause="connection_lost", message="lost", attempt=1, id="a"),
                   ongoing=True)
    history.waiting_for_network(105.0)
    assert history.offline_since == 105.0
    history.waiting_for_network(None)
    history.note_offline(105.0, 160.0)
    history.set_unavailable("a", 62.0)
    again = ReconnectHistory(path)
    assert [(r.id, r.offline, r.unavailable_s) for r in again.records] == [("a", ((105.0, 160.0),), 62.0)]
