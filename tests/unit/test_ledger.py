"""The spend ledger: totals by day and model, month and session; it survives a reopen; the budget's states."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ava_tray.clock import ManualClock
from ava_tray.ledger import BudgetStatus, SpendLedger, Uplink, budget_of, local_day
from ava_tray.pricing import Usage

NOON = 1_796_126_400.0  # 2026-12-01 12:00 UTC-ish; days are local, read through local_day


def test_totals_by_day_model_month_and_session(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0, wall_offset=NOON)
    ledger = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
    ledger.record("gpt-realtime-2.1", Usage(audio_in=1000, audio_out=500), 0.064, session="sess_a")
    ledger.record("gpt-realtime-2.1", Usage(text_in=10, audio_in=1000, audio_out=500), 0.06404, session="sess_a")
    ledger.record("gpt-realtime-2.1-mini", Usage(audio_in=100), 0.001, session="sess_b")
    clock.advance(86_400)
    ledger.record("gpt-realtime-2.1", Usage(audio_out=1000), 0.064, session="sess_c")
    assert ledger.cost_today() == pytest.approx(0.064)
    assert ledger.cost_on(local_day(NOON)) == pytest.approx(0.12904)
    assert ledger.cost_of_session("sess_a") == pytest.approx(0.12804)
    totals = ledger.totals_by_day()
    assert [(t.day, t.model) for t in totals] == [(local_day(NOON), "gpt-realtime-2.1"),
                                                   (local_day(NOON), "gpt-realtime-2.1-mini"),
                                                   (local_day(NOON + 86_400), "gpt-realtime-2.1")]
    assert totals[0].usage == Usage(text_in=10, audio_in=2000, audio_out=1000)
    ledger.close()

    reopened = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
    assert reopened.cost_today() == pytest.approx(0.064), "what was recorded survives a restart"
    with sqlite3.connect(tmp_path / "spend.sqlite3") as db:  # only numbers and names: no key, no conversation
        columns = [row[1] for row in db.execute("PRAGMA table_info(responses)")]
    assert "transcript" not in columns and "key" not in columns


def test_the_budget_warns_pauses_and_can_be_gone_past_for_the_day(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0, wall_offset=NOON)
    ledger = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
    assert not budget_of(ledger, 2.0).warn
    ledger.record("gpt-realtime-2.1", Usage(audio_out=25_000), 1.60)
    status = budget_of(ledger, 2.0)
    assert status.warn and not status.paused
    ledger.record("gpt-realtime-2.1", Usage(audio_out=6_250), 0.40)
    assert budget_of(ledger, 2.0).paused
    assert not budget_of(ledger, 0.0).paused, "no budget, no pause"
    ledger.go_on_today()
    assert budget_of(ledger, 2.0) == BudgetStatus(2.0, pytest.approx(2.0), gone_on=True)  # type: ignore[arg-type]
    assert not budget_of(ledger, 2.0).paused
    clock.advance(86_400)
    assert not budget_of(ledger, 2.0).warn and not budget_of(ledger, 2.0).gone_on, "a new day starts afresh"


def test_the_history_shows_what_each_session_cost(tmp_path: Path) -> None:
    from ava_tray.history import ReconnectRecord
    from ava_tray.ui import history_format

    clock = ManualClock(start=0.0, wall_offset=NOON)
    ledger = SpendLedger(None, clock=clock)
    ledger.record("gpt-realtime-2.1", Usage(audio_out=5000), 0.32)
    clock.advance(600)
    ledger.record("gpt-realtime-2.1", Usage(audio_out=2500), 0.16)
    ended = ReconnectRecord(at=NOON + 900, cause="session_expired", message="Session expired", attempt=1,
                           session_s=1000.0)
    before = ReconnectRecord(at=NOON - 10, cause="connection_lost", message="Connection lost", attempt=1,
                            session_s=50.0)
    table = history_format.rows([ended, before], cost_of=ledger.cost_between)
    assert [r[-1] for r in table] == ["$0.48", "—"]
    assert len(table[0]) == len(history_format.COLUMNS) + 1
    assert len(history_format.rows([ended])[0]) == len(history_format.COLUMNS), "no ledger, no cost column"


def test_the_microphone_audio_sent_is_counted_per_day_and_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0, wall_offset=NOON)
    ledger = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
    assert ledger.uplink_today() == Uplink(0, 0)
    ledger.add_uplink(96_000, openings=1)
    ledger.add_uplink(48_000)
    ledger.add_uplink(0, openings=1)
    assert ledger.uplink_today() == Uplink(144_000, 2)
    ledger.close()
    clock.advance(86_400)
    reopened = SpendLedger(tmp_path / "spend.sqlite3", clock=clock)
    assert reopened.uplink_today() == Uplink(0, 0), "a new day starts from nothing"
    assert reopened.uplink_on(local_day(NOON)) == Uplink(144_000, 2)
