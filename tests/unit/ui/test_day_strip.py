"""The history window's day strips over a synthetic week: the colours where the week says, what hovering says,
each day's availability as the history counts it; a screenshot goes to the test artifacts (day-strip/)."""

from __future__ import annotations

import pytest
from outputs import artifacts_dir
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot
from week_of_history import NOW, at, week

from ava_tray.clock import ManualClock
from ava_tray.day_timeline import Live
from ava_tray.history import ReconnectHistory, availability
from ava_tray.ui.day_strip import COLOURS, NOT_RUNNING
from ava_tray.ui.history_format import format_share
from ava_tray.ui.history_window import HistoryWindow


class WallClock(ManualClock):
    """A manual clock whose wall time is the synthetic week's "now"."""

    def wall(self) -> float:
        return NOW + self.monotonic()


@pytest.fixture
def window(qtbot: QtBot) -> HistoryWindow:
    history = ReconnectHistory(None)
    for record in week():
        history.append(record)
    window = HistoryWindow(history, WallClock(start=0.0), live=lambda: Live(connected_since=at(0, 10, 0, 30)))
    qtbot.addWidget(window)
    window.resize(900, 640)
    window.show()
    qtbot.waitExposed(window)
    return window


def colour_at(window: HistoryWindow, day: int, wall: float) -> str:
    strip = window.days.strips[day]
    image = strip.grab().toImage()
    point = window.days.strip_point(day, wall)
    return QColor(image.pixel(point.x(), point.y())).name()


def test_the_week_reads_at_a_glance(window: HistoryWindow) -> None:
    days = window.days
    assert len(days.strips) == 7
    expected = {(0, at(6, 10)): "connected", (1, at(5, 9, 15)): "error", (2, at(4, 14, 10)): "offline",
                (3, at(3, 20)): "paused", (4, at(2, 11, 30)): "connected", (6, at(0, 12)): "connected"}
    for (day, wall), kind in expected.items():
        assert colour_at(window, day, wall) == COLOURS[kind], (day, kind)
    assert colour_at(window, 5, at(1, 12)) == NOT_RUNNING  # yesterday: not running
    assert colour_at(window, 0, at(6, 3)) == NOT_RUNNING  # before AVA started that day
    strip = days.strips[2]
    assert strip.text_at(strip.x_of(at(4, 14, 10))) == "14:00–14:20 · Waiting for the network · 19 min"
    assert days.strips[1].text_at(days.strips[1].x_of(at(5, 9, 15))) == "09:00–09:30 · Error · 29 min"
    assert days.strips[6].text_at(days.strips[6].x_of(at(0, 20))) == "Later today"
    path = artifacts_dir("day-strip") / "synthetic-week.png"
    assert window.grab().save(str(path))


def test_each_figure_is_the_historys_availability(window: HistoryWindow) -> None:
    records = week()
    for strip, figure in zip(window.days.strips, window.days.figures, strict=True):
        until = min(strip.day.end, NOW)
        share = availability(records, until, until - strip.day.begin)
        assert figure.text() == f"{format_share(share * 100)} %"
    assert window.days.figures[1].text() == "97.9 %"  # 30 min of 24 h never connected
    assert "unavailable 30 min" in window.days.figures[1].toolTip()
