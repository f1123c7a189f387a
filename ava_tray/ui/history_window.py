"""The reconnect history window: the last 7 days at a glance (a strip per day), a live table of the records,
totals, Copy, Export as CSV, Clear."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ava_tray.clock import Clock
from ava_tray.day_timeline import Live, last_days
from ava_tray.history import ReconnectHistory
from ava_tray.ledger import Uplink
from ava_tray.ui import history_format
from ava_tray.ui.day_strip import DayStrips

logger = logging.getLogger(__name__)

WINDOW_TITLE = "AVA · Reconnect history"
DAYS_SHOWN = 7
LIVE_REFRESH_MS = 60_000


class HistoryWindow(QWidget):
    """Shows `history` and follows it while open (history.subscribe)."""

    def __init__(self, history: ReconnectHistory, clock: Clock, parent: QWidget | None = None, *,
                 cost_of: history_format.SessionCost | None = None, live: Callable[[], Live] | None = None,
                 sent_today: Uplink | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self._clock = clock
        self._live = live or Live
        self._cost_of = cost_of
        """What a session cost, from the spend ledger (a column of its own when given)."""
        self._sent_today = sent_today
        self._unsubscribe: Callable[[], None] | None = None
        self.setWindowTitle(WINDOW_TITLE)
        self.resize(820, 640)
        self.days = DayStrips(self)
        days_box = QGroupBox(f"The last {DAYS_SHOWN} days", self)
        QVBoxLayout(days_box).addWidget(self.days)
        self._tick = QTimer(self)
        self._tick.setInterval(LIVE_REFRESH_MS)  # today's strip grows while the window is open
        self._tick.timeout.connect(self.refresh)

        columns = [*history_format.COLUMNS, *([history_format.COST_COLUMN] if cost_of is not None else [])]
        self.table = QTableWidget(0, len(columns), self)
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.totals_label = QLabel(self)
        self.empty_label = QLabel("No reconnects yet.", self)

        self.copy_button = QPushButton("Copy", self)
        self.export_button = QPushButton("Export as CSV…", self)
        self.clear_button = QPushButton("Clear…", self)
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.export_button.clicked.connect(self._ask_export)
        self.clear_button.clicked.connect(self.confirm_clear)

        buttons = QHBoxLayout()
        buttons.addWidget(self.totals_label, 1)
        for button in (self.copy_button, self.export_button, self.clear_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(days_box)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_label)
        layout.addLayout(buttons)
        if history.warning:
            warning = QLabel(history.warning, self)
            warning.setWordWrap(True)
            layout.insertWidget(0, warning)
        # The table is filled when the window is shown (showEvent), not here as well.

    # -- live updates ----------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.history.subscribe(self.refresh)
        self._tick.start()
        self.refresh()
        super().showEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.detach()
        super().closeEvent(event)

    def detach(self) -> None:
        """Stop following the history (the window is closed)."""
        self._tick.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def refresh(self) -> None:
        """Rebuild the table and the totals from the records."""
        records = self.history.records
        ongoing = self.history.ongoing
        table_rows = history_format.rows(records, ongoing=ongoing, cost_of=self._cost_of)
        self.table.setRowCount(len(table_rows))
        for index, cells in enumerate(table_rows):
            for column, text in enumerate(cells):
                self.table.setItem(index, column, QTableWidgetItem(text))
        now = self._clock.wall()
        self.totals_label.setText(history_format.totals(records, now, ongoing=ongoing, sent_today=self._sent_today))
        self.days.show_days(last_days(records, now, DAYS_SHOWN, ongoing=ongoing,
                                      offline_since=self.history.offline_since, live=self._live()), now)
        self.empty_label.setVisible(not records)
        self.copy_button.setEnabled(bool(records))
        self.export_button.setEnabled(bool(records))
        self.clear_button.setEnabled(bool(records))

    def show_sent_today(self, sent_today: Uplink) -> None:
        """The microphone audio sent today changed (the engine's snapshot): update the totals line."""
        if sent_today != self._sent_today:
            self._sent_today = sent_today
            if self.isVisible():
                self.refresh()

    # -- actions ---------------------------------------------------------------------------------

    def copy_to_clipboard(self) -> None:
        """Put the table on the clipboard, tab-separated."""
        QGuiApplication.clipboard().setText(history_format.to_tsv(self.history.records, ongoing=self.history.ongoing))

    def _ask_export(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export the reconnect history", "ava-reconnects.csv",
                                              "CSV files (*.csv)")
        if name:
            self.export_to(Path(name))

    def export_to(self, path: Path) -> bool:
        """Write the records to `path` as CSV; a failure is shown, never raised."""
        try:
            history_format.export_csv(self.history.records, path)
        except OSError as exc:
            QMessageBox.warning(self, WINDOW_TITLE, f"Could not write {path}: {exc.strerror or exc}.")
            return False
        return True

    def confirm_clear(self) -> None:
        """Ask, then forget every record."""
        answer = QMessageBox.question(
            self, WINDOW_TITLE, "Clear the whole reconnect history? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.history.clear()
