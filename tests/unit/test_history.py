"""Reconnect history: persisted at once, bounded, crash-tolerant, corrupt files set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ava_tray.history import DAY, Outage, ReconnectHistory, ReconnectRecord, availability, outages, reconnects_since


def record(at: float, cause: str = "session_expired", **extra: object) -> ReconnectRecord:
    return ReconnectRecord(at=at, cause=cause, message="m", attempt=1, **extra)  # type: ignore[arg-type]


def test_records_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "h" / "history.jsonl"
    history = ReconnectHistory(path)
    first = record(100.0, close_code=1001, close_reason="limit")
    history.append(first)
    history.set_unavailable(first.id, 3.2)
    again = ReconnectHistory(path)
    assert again.records == [ReconnectRecord(**{**first.__dict__, "unavailable_s": 3.2})]
    assert again.warning is None


def test_a_half_written_last_line_loses_only_that_record(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = ReconnectHistory(path)
    history.append(record(1.0))
    history.append(record(2.0))
    with path.open("a") as file:
        file.write('{"kind":"record","at":3.0,"cau')  # the crash
    again = ReconnectHistory(path)
    assert [r.at for r in again.records] == [1.0, 2.0]
    assert again.warning is None
    again.append(record(4.0))
    assert [r.at for r in ReconnectHistory(path).records] == [1.0, 2.0, 4.0]


def test_a_corrupt_file_is_set_aside_with_a_warning_and_good_records_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    good = record(1.0)
    path.write_text(json.dumps({"kind": "record", **good.__dict__}) + "\n\x00garbage\n{\"kind\": \"record\"}\n")
    history = ReconnectHistory(path)
    assert history.warning is not None and "set aside" in history.warning
    assert [r.id for r in history.records] == [good.id]
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and "garbage" in aside[0].read_text()
    assert ReconnectHistory(path).warning is None


def test_an_unreadable_file_is_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.mkdir()  # a folder where the file should be
    history = ReconnectHistory(path)
    assert history.records == [] and history.warning
    history.append(record(1.0))  # must not raise


def test_bounded_on_disk_and_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = ReconnectHistory(path, max_records=10)
    for index in range(35):
        history.append(record(float(index)))
    assert len(history.records) == 10
    assert len(path.read_text().splitlines()) <= 20
    assert [r.at for r in ReconnectHistory(path, max_records=10).records] == [float(i) for i in range(25, 35)]


def test_listeners_hear_every_change_and_clear_empties_the_file(tmp_path: Path) -> None:
    history = ReconnectHistory(tmp_path / "history.jsonl")
    calls: list[int] = []
    history.subscribe(lambda: calls.append(len(history.records)))
    history.append(record(1.0))
    history.clear()
    assert calls == [1, 0]
    assert ReconnectHistory(tmp_path / "history.jsonl").records == []


def test_the_key_never_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    key = "sk-test-" + "A1b2C3d4" * 5
    ReconnectHistory(path).append(record(1.0, close_reason=f"bad key {key}"))
    assert key not in path.read_text()


def test_summaries() -> None:
    now = 100_000.0
    records = [
        record(now - 90_000, "connection_lost", unavailable_s=100.0),  # outside the window
        record(now - 1000, "connection_lost", unavailable_s=864.0),
        record(now - 500, "user_restart", unavailable_s=0.0),
    ]
    assert reconnects_since(records, now - 2000) == 1
    assert availability(records, now) == 0.99


def test_an_ongoing_outage_counts_from_when_it_began_until_now() -> None:
    now = 100_000.0
    older = record(now - 5000, "connection_lost", unavailable_s=100.0)  # written before unavailable_since was kept
    first = record(now - 900, "other", unavailable_since=now - 1000)  # AVA started at now - 1000, never connected
    second = record(now - 600, "other", unavailable_since=now - 1000)
    records = [older, first, second]
    assert outages(records, now, ongoing=second.id) == [
        Outage(now - 5000, now - 4900, older.id), Outage(now - 1000, now, second.id, ongoing=True)]
    assert availability(records, now, ongoing=second.id) == pytest.approx(1 - 1100 / DAY)
    assert availability(records, now) == pytest.approx(1 - 100 / DAY), "not ongoing: an earlier run's last record"
    done = record(now - 600, "other", unavailable_since=now - 1000, unavailable_s=700.0)
    assert outages([first, done], now) == [Outage(now - 1000, now - 300, done.id)]


def test_the_outage_stops_being_ongoing_once_completed_or_ava_stops(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = ReconnectHistory(path)
    first, second = record(10.0, "other", unavailable_since=5.0), record(20.0, "other", unavailable_since=5.0)
    history.append(first, ongoing=True)
    history.append(second, ongoing=True)
    assert history.ongoing == second.id
    history.set_unavailable(second.id, 30.0)
    assert history.ongoing is None
    third = record(50.0, "connection_lost", unavailable_since=50.0)
    history.append(third, ongoing=True)
    history.outage_over(third.id)
    assert history.ongoing is None
    again = ReconnectHistory(path)
    assert [(r.unavailable_since, r.unavailable_s) for r in again.records] == [(5.0, None), (5.0, 30.0), (50.0, None)]
    assert again.ongoing is None, "an outage never carries over from an earlier run"
