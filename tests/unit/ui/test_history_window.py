"""The reconnect history window: live rows, totals, Copy, Export as CSV, Clear with a confirmation."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from ava_tray.clock import ManualClock
from ava_tray.history import ReconnectHistory, ReconnectRecord
from ava_tray.ledger import Uplink
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.supervisor import ReconnectDelays, Reconnecting, SessionContext, Supervisor
from ava_tray.ui import history_format
from ava_tray.ui.history_window import HistoryWindow


def record(clock: ManualClock, cause: str = "session_expired", **extra: object) -> ReconnectRecord:
    values: dict[str, object] = {"at": clock.wall(), "cause": cause, "message": "Session expired (60-minute limit "
                                 "reached)", "attempt": 1, "close_code": 1001,
                                 "close_reason": "Your session hit the maximum duration of 60 minutes.",
                                 "delay_s": 3.0, "session_s": 3600.0, "unavailable_s": 3.4}
    values.update(extra)
    return ReconnectRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path) -> HistoryWindow:
    clock = ManualClock(start=1000.0, wall_offset=1_700_000_000.0)
    history = ReconnectHistory(tmp_path / "history.jsonl")
    history.append(record(clock))
    win = HistoryWindow(history, clock)
    qtbot.addWidget(win)
    win.show()
    return win


def test_shows_records_appended_while_open(window: HistoryWindow, qtbot: QtBot) -> None:
    assert window.table.rowCount() == 1
    clock = ManualClock(start=2000.0)
    window.history.append(record(clock, "connection_lost", close_code=1006, close_reason="", delay_s=5.0,
                                 unavailable_s=None, session_s=42.0))
    qtbot.waitUntil(lambda: window.table.rowCount() == 2)
    newest = [window.table.item(0, c).text() for c in range(window.table.columnCount())]
    assert newest[1:] == ["connection lost", "1006", "5 s", "—", "42 s"]
    assert "Reconnects today:" in window.totals_label.text() and "Availability (last 24 h)" in \
        window.totals_label.text()


def test_stops_following_once_closed(window: HistoryWindow) -> None:
    window.close()
    window.history.append(record(ManualClock(start=3000.0)))
    assert window.table.rowCount() == 1


def test_copy_puts_tab_separated_rows_on_the_clipboard(window: HistoryWindow) -> None:
    window.copy_button.click()
    lines = QGuiApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == list(history_format.COLUMNS)
    assert lines[1].split("\t")[1:4] == ["session expired",
                                         "1001 Your session hit the maximum duration of 60 minutes.", "3 s"]


def test_export_writes_csv(window: HistoryWindow, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    assert window.export_to(target)
    with target.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1 and rows[0]["cause"] == "session_expired" and rows[0]["close_code"] == "1001"


def test_clear_asks_first(window: HistoryWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked = []

    def question(*args: object, **kwargs: object) -> QMessageBox.StandardButton:
        asked.append(args[2])
        return next(answers)

    monkeypatch.setattr(QMessageBox, "question", question)
    window.clear_button.click()
    assert window.table.rowCount() == 1
    window.clear_button.click()
    assert window.table.rowCount() == 0 and window.history.records == []
    assert len(asked) == 2 and "cannot be undone" in str(asked[0])
    assert window.empty_label.isVisibleTo(window)


async def test_time_never_connected_since_start_is_unavailable(qtbot: QtBot, tmp_path: Path) -> None:
    """No microphone: two "unexpected error" endings and never connected. The window must not say 100 %."""
    clock = ManualClock(start=1000.0, wall_offset=1_700_000_000.0)
    history = ReconnectHistory(tmp_path / "history.jsonl")

    async def no_microphone(context: SessionContext) -> SessionEnding:
        await asyncio.sleep(0)
        return SessionEnding(Cause.OTHER, "Unexpected error: the microphone 'default' was not found")

    supervisor = Supervisor(no_microphone, clock=clock, history=history, delays=ReconnectDelays(other=600.0))
    task = asyncio.ensure_future(supervisor.run())
    for attempt in (2, 3):
        async with asyncio.timeout(2):
            while not (isinstance(supervisor.state, Reconnecting) and supervisor.state.attempt == attempt
                       and clock.sleeping >= 2):  # the wake watch and the countdown
                await asyncio.sleep(0)
        state = supervisor.state
        assert isinstance(state, Reconnecting)
        if attempt == 2:
            clock.advance(state.delay)
    clock.advance(300)  # 10 + 5 minutes since the start, never connected: 99.0 % of a day

    window = HistoryWindow(history, clock)
    qtbot.addWidget(window)
    window.show()
    assert [r.cause for r in history.records] == ["other", "other"]
    assert "Availability (last 24 h): 99.0 %" in window.totals_label.text()
    newest = [window.table.item(0, c).text() for c in range(window.table.columnCount())]
    assert newest[4] == "ongoing"
    supervisor.stop()
    await asyncio.wait_for(task, 2)


def test_the_totals_say_how_much_microphone_audio_was_sent_today(window: HistoryWindow) -> None:
    assert "Microphone audio sent today" not in window.totals_label.text()  # not known: not claimed
    window.show_sent_today(Uplink(48_000 * 30, 4))
    assert window.totals_label.text().endswith("Microphone audio sent today: 1.4 MB (30 s of audio, 4 times)")
    window.show_sent_today(Uplink(0, 0))
    assert window.totals_label.text().endswith("Microphone audio sent today: nothing")
