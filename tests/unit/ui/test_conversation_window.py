"""The conversation window: rows follow the log live, tool calls fold, search filters, copy and both exports,
saved days, Clear."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from ava_tray.conversation_log import ConversationLog
from ava_tray.states import Connected
from ava_tray.ui.conversation_window import ConversationWindow

DAY = dt.datetime(2026, 12, 14, 9, 0, 0).timestamp()


class Wall:
    def __init__(self) -> None:
        self.now = DAY

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(tmp_path: Path) -> ConversationLog:
    return ConversationLog(save_dir=tmp_path / "conversation", saving=True, wall=Wall())


def test_rows_follow_the_log_and_a_tool_call_unfolds(qtbot: QtBot, log: ConversationLog) -> None:
    window = ConversationWindow(log)
    qtbot.addWidget(window)
    window.show()
    assert window.empty_label.isVisible() and not window.export_button.isEnabled()
    log.heard("user", "what time is it")
    call = log.tool_started("get_time", '{"time_zone": null}')
    log.heard("assistant", "It is nine.")
    assert window.view.model().rowCount() == 3 and not window.empty_label.isVisible()
    folded = window.view.model().index(1, 0)
    assert "running…" in window.delegate.texts(log.entry(1), False)[1]
    log.tool_finished(call, '{"time": "09:00"}')
    short = window.view.sizeHintForIndex(folded).height()
    window.view.clicked.emit(folded)
    assert window.model.expanded == {1}
    assert "arguments" in window.delegate.texts(log.entry(1), True)[1]
    assert window.view.sizeHintForIndex(folded).height() > short
    log.on_state(Connected(1, 0.0))
    log.on_state(Connected(1, 5.0, rollovers=1))
    assert window.debug_state()["entries"][-1]["marker"] == "renewed"


def test_search_copy_and_export(qtbot: QtBot, log: ConversationLog, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(10):
        log.heard("user", f"question {n}")
        log.heard("assistant", f"answer {n} about weather" if n == 7 else f"answer {n}")
    window = ConversationWindow(log)
    qtbot.addWidget(window)
    window.show()
    window.search_edit.setText("WEATHER")
    assert window.filter.rowCount() == 1 and window.found_label.text() == "1 of 20"
    window.view.selectAll()
    window.copy_selected()
    assert QGuiApplication.clipboard().text() == "AVA (09:00:00): answer 7 about weather\n"
    window.search_edit.clear()
    window.copy_all()
    assert QGuiApplication.clipboard().text().count("\n") == 20
    assert window.export_to(tmp_path / "day.md") and window.export_to(tmp_path / "day.json")
    assert "**You** (09:00:00): question 0" in (tmp_path / "day.md").read_text()
    data = json.loads((tmp_path / "day.json").read_text())
    assert len(data["entries"]) == 20 and data["entries"][-1]["text"] == "answer 9"
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: warnings.append(text))
    assert not window.export_to(tmp_path / "missing" / "day.md")
    assert warnings and "Could not write" in warnings[0]


def test_earlier_days_and_clear(qtbot: QtBot, log: ConversationLog, monkeypatch: pytest.MonkeyPatch) -> None:
    wall = Wall()
    log._wall = wall
    log.heard("user", "yesterday's question")
    wall.now += 86_400
    log.heard("user", "today's question")
    window = ConversationWindow(log)
    qtbot.addWidget(window)
    window.show()
    assert [window.day_box.itemText(i) for i in range(window.day_box.count())] == ["Today", "Mon 14 Dec 2026"]
    assert window.debug_state()["entries"][0]["text"] == "today's question"
    window.show_day(dt.date(2026, 12, 14))
    assert window.debug_state()["entries"][0]["text"] == "yesterday's question"
    log.heard("assistant", "a new answer")  # while a saved day is shown it stays as it is
    assert window.filter.rowCount() == 1
    window.show_day(None)
    assert window.filter.rowCount() == 2
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.confirm_clear()
    assert window.filter.rowCount() == 0 and window.day_box.count() == 1 and log.saved_days() == []
