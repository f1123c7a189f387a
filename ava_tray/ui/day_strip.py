"""The last days at a glance: one strip per day coloured by state, hover for what and how long, and each day's
availability beside it (from `ava_tray.day_timeline`, the same data as the history's availability figure)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QToolTip, QWidget

from ava_tray.day_timeline import KINDS, LABELS, UNAVAILABLE, Day, StretchKind
from ava_tray.status import format_outage
from ava_tray.ui.history_format import format_share

logger = logging.getLogger(__name__)

COLOURS: dict[StretchKind, str] = {"connected": "#2e9d4f", "reconnecting": "#e8a317", "offline": "#6f63c9",
                                   "error": "#d23c3c", "paused": "#8a5a00"}
NOT_RUNNING = "#d9d9d9"
NOT_RUNNING_TEXT = "AVA was not running (or nothing was recorded)"
STRIP_HEIGHT = 18


class DayStrip(QWidget):
    """One day from midnight to midnight; a stretch's colour says the state, hovering says what and how long."""

    def __init__(self, day: Day, now: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.day = day
        self.now = now
        self.setMinimumSize(240, STRIP_HEIGHT)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:
        return QSize(480, STRIP_HEIGHT + 4)

    def x_of(self, wall: float) -> float:
        span = self.day.end - self.day.begin
        return (wall - self.day.begin) / span * self.width()

    def wall_at(self, x: float) -> float:
        return self.day.begin + x / max(1, self.width()) * (self.day.end - self.day.begin)

    def text_at(self, x: float) -> str:
        """What hovering at `x` says."""
        wall = self.wall_at(x)
        if wall > self.now:
            return "Later today"
        stretch = self.day.at(wall)
        return stretch.describe() if stretch is not None else NOT_RUNNING_TEXT

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        height = self.height() - 4
        painter.fillRect(QRectF(0, 2, self.width(), height), QColor(NOT_RUNNING))
        future = self.x_of(self.now)
        if future < self.width():
            painter.fillRect(QRectF(future, 2, self.width() - future, height),
                             self.palette().color(QPalette.ColorRole.Base))
        # Unavailable stretches last and at least 2 px wide, so a 3 s drop between two sessions still shows.
        for stretch in sorted(self.day.stretches, key=lambda s: s.kind in UNAVAILABLE):
            left = self.x_of(stretch.begin)
            width = max(2.0 if stretch.kind in UNAVAILABLE else 1.0, self.x_of(stretch.end) - left)
            painter.fillRect(QRectF(left, 2, width, height), QColor(COLOURS[stretch.kind]))
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Mid), 1))
        for hour in (6, 12, 18):
            x = round(self.width() * hour / 24)
            painter.drawLine(x, 0, x, 3)
            painter.drawLine(x, self.height() - 3, x, self.height())
        painter.drawRect(0, 2, self.width() - 1, height - 1)
        painter.end()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            QToolTip.showText(event.globalPos(), self.text_at(event.pos().x()), self)
            return True
        return super().event(event)


class DayStrips(QWidget):
    """The last days, oldest at the top: the date, the strip, and the day's availability."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)
        self.grid.setColumnStretch(1, 1)
        self.strips: list[DayStrip] = []
        self.figures: list[QLabel] = []
        self.legend = QWidget(self)
        legend = QHBoxLayout(self.legend)
        legend.setContentsMargins(0, 4, 0, 0)
        for kind in KINDS:
            legend.addWidget(_Swatch(COLOURS[kind], self.legend))
            legend.addWidget(QLabel(LABELS[kind], self.legend))
        legend.addWidget(_Swatch(NOT_RUNNING, self.legend))
        legend.addWidget(QLabel("Not running", self.legend))
        legend.addStretch(1)

    def show_days(self, days: list[Day], now: float) -> None:
        """Show `days` (oldest first) as they are at wall time `now`."""
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None and widget is not self.legend:
                widget.deleteLater()
        self.strips, self.figures = [], []
        for row, day in enumerate(days):
            label = QLabel(day.date.strftime("%a %d %b"), self)
            strip = DayStrip(day, now, self)
            down = day.unavailable_s
            figure = QLabel(f"{format_share(day.availability * 100)} %", self)
            figure.setToolTip(f"Available {format_share(day.availability * 100)} % of the day"
                              + (f" so far; unavailable {format_outage(down)}" if down else ""))
            figure.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.grid.addWidget(label, row, 0)
            self.grid.addWidget(strip, row, 1)
            self.grid.addWidget(figure, row, 2)
            self.strips.append(strip)
            self.figures.append(figure)
        self.grid.addWidget(self.legend, len(days), 0, 1, 3)

    def strip_point(self, day_index: int, wall: float) -> QPoint:
        """Where on screen-local coordinates of strip `day_index` the wall time `wall` is (for tests)."""
        strip = self.strips[day_index]
        return QPoint(round(strip.x_of(wall)), strip.height() // 2)


class _Swatch(QWidget):
    def __init__(self, colour: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour = QColor(colour)
        self.setFixedSize(12, 12)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.colour)
        painter.end()
